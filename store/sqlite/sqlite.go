// Package sqlite is the embedded default store of fnhost: one SQLite database file in WAL
// mode, written through the pure Go driver modernc.org/sqlite.
//
// One process owns the database at a time: Open takes an exclusive lock on PATH.lock and
// fails if another fnhost process holds it. Every write goes to a single writer goroutine
// that groups whatever requests are queued into one transaction (one fsync), each request
// in its own savepoint, so that many concurrent Enqueue, Claim and Complete calls cost a
// single commit. The sync that makes a group durable runs in its own goroutine while the
// writer starts on the next group, and every request is answered only once its group is
// durable. Reads use a separate pool of connections, which WAL lets run beside the
// writer.
//
// The store registers itself under the "sqlite" scheme: store.Open(ctx, "sqlite:PATH").
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite" // also registers the "sqlite" database/sql driver

	"github.com/fnhost/fnhost/store"
)

func init() {
	store.Register("sqlite", func(ctx context.Context, location string) (store.Store, error) {
		path, err := ParseLocation(location)
		if err != nil {
			return nil, err
		}
		return Open(ctx, path, Options{})
	}, func(ctx context.Context, location string) (int, int, error) {
		path, err := ParseLocation(location)
		if err != nil {
			return 0, 0, err
		}
		n, err := Migrate(ctx, path)
		return n, SchemaVersion(), err
	})
}

// Migrate brings the database at path to the schema this fnhost knows and returns how
// many migrations it applied. Like Open, it needs the database to itself: a host
// running on it keeps it locked.
func Migrate(ctx context.Context, path string) (int, error) {
	s, err := Open(ctx, path, Options{})
	if err != nil {
		return 0, err
	}
	return s.migrated, s.Close()
}

// ErrClosed is returned by the methods of a Store that has been closed.
var ErrClosed = errors.New("sqlite store is closed")

// Options tune a Store. The zero value is the recommended configuration.
type Options struct {
	// Synchronous is the durability of a write: "FULL" (the default) makes every write
	// durable across a power loss before it returns; "NORMAL" keeps the database
	// consistent but may lose the last writes on a power loss (never on a process
	// crash); "OFF" leaves syncing to the operating system. With FULL the store syncs
	// the write-ahead log itself, once for every group of committed transactions, while
	// the writer goes on with the next group; SQLite then runs with synchronous=NORMAL,
	// whose checkpoints sync the log before they copy it.
	Synchronous string
	// MaxBatch caps how many write requests one group-commit transaction takes
	// (default 1000).
	MaxBatch int
	// MaxBatchRows caps the rows (invocations enqueued, claimed, completed…) one
	// group-commit transaction writes, so that a transaction stays short (default 20000).
	MaxBatchRows int
	// ReadConns is the size of the pool of read connections (default: GOMAXPROCS,
	// at least 2).
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock (default 5s). Only
	// checkpoints and readers contend: the writer is alone.
	BusyTimeout time.Duration
	// CacheSizeKiB is the page cache of the writer connection (default 4096, 4 MiB; the OS caches the file too).
	CacheSizeKiB int
	// Fsync makes SQLite commit with fsync(2) rather than fdatasync(2). fdatasync is
	// what SQLite uses on Linux when built from its own sources: it syncs the data and
	// the size of the file, which is all a commit needs, and skips the timestamps, often
	// halving the time of a commit. The choice applies to the whole process.
	Fsync bool
	// CheckpointPages is the size of the write-ahead log, in pages, that makes the
	// writer copy it back into the database (default 8192, 32 MiB with 4 KiB pages). A
	// larger log costs fewer checkpoints: pages written many times are copied once.
	CheckpointPages int
	// PruneChunk is how many invocations one Prune transaction deletes at most, so that
	// the writer is not held for long (default 5000).
	PruneChunk int
}

func (o *Options) setDefaults() error {
	if o.Synchronous == "" {
		o.Synchronous = "FULL"
	}
	switch strings.ToUpper(o.Synchronous) {
	case "OFF", "NORMAL", "FULL":
		o.Synchronous = strings.ToUpper(o.Synchronous)
	default:
		return fmt.Errorf("synchronous %q: want FULL, NORMAL or OFF", o.Synchronous)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.MaxBatchRows <= 0 {
		o.MaxBatchRows = 20000
	}
	if o.ReadConns <= 0 {
		o.ReadConns = max(runtime.GOMAXPROCS(0), 2)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.CacheSizeKiB <= 0 {
		o.CacheSizeKiB = 4096
	}
	if o.CheckpointPages <= 0 {
		o.CheckpointPages = 8192
	}
	if o.PruneChunk <= 0 {
		o.PruneChunk = 5000
	}
	return nil
}

// ParseLocation turns a storage location, "sqlite:PATH" (or "sqlite://PATH"), into PATH.
func ParseLocation(location string) (string, error) {
	rest, ok := strings.CutPrefix(location, "sqlite:")
	if !ok {
		return "", fmt.Errorf("sqlite location %q: want sqlite:PATH", location)
	}
	rest = strings.TrimPrefix(rest, "//")
	if rest == "" {
		return "", fmt.Errorf("sqlite location %q: the path is empty", location)
	}
	return rest, nil
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	path string
	opts Options
	lock *os.File
	// migrated is how many migrations Open applied.
	migrated int

	wdb *sql.DB
	rdb *sql.DB
	// rstmts are the statements prepared on the read pool, by query text.
	rstmts sync.Map
	// prep counts the statements being prepared in the background (cachedStmt);
	// prepClosed, under prepMu, stops new ones once Close has begun.
	prep       sync.WaitGroup
	prepMu     sync.Mutex
	prepClosed bool
	w          *writer
	reqs       chan *request
	quit       chan struct{}
	done       chan struct{}

	// With Synchronous FULL, wal is the write-ahead log, synced by syncLoop before the
	// requests of committed transactions are answered.
	wal      *os.File
	syncQ    chan []*request
	syncDone chan struct{}
	// broken is set when a sync failed: the store refuses every later write.
	broken atomic.Pointer[error]

	// batches counts the transactions of the writer; queued, the requests waiting for
	// it to take them.
	batches atomic.Int64
	queued  atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed) the database at path, migrates its schema, and
// starts the writer. The parent directory is created when missing. Open fails when
// another process has the database open. Invocations left running by a previous process
// get an expired lease, so that the first Rescue returns them to pending.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite store %q: want the path of a database file", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
	}
	if !opts.Fsync {
		// Where fdatasync does not exist (macOS, Windows) SQLite keeps its own choice.
		_, _ = msqlite.Fdatasync(true)
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path: path,
		opts: opts,
		lock: lock,
		reqs: make(chan *request),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	if err := s.open(ctx); err != nil {
		if s.rdb != nil {
			_ = s.rdb.Close()
		}
		if s.w != nil {
			s.w.close()
		}
		if s.wal != nil {
			_ = s.wal.Close()
		}
		if s.wdb != nil {
			_ = s.wdb.Close()
		}
		_ = unlockFile(lock)
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	go s.writeLoop()
	if s.wal != nil {
		go s.syncLoop()
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	ms := int64(s.opts.BusyTimeout / time.Millisecond)
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", ms))
	q.Add("_pragma", "journal_mode(WAL)")
	sync := s.opts.Synchronous
	if sync == "FULL" {
		sync = "NORMAL" // and the store syncs the log: see syncLoop
	}
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -s.opts.CacheSizeKiB))
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", s.opts.CheckpointPages))
	wdb, err := sql.Open("sqlite", s.path+"?"+q.Encode())
	if err != nil {
		return err
	}
	s.wdb = wdb
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	conn, err := wdb.Conn(ctx)
	if err != nil {
		return err
	}
	s.w = newWriter(conn)
	if s.migrated, err = migrate(ctx, conn); err != nil {
		return err
	}
	// No other process can hold a lease: whatever is running was left by a process
	// that stopped. Expire those leases so that the first Rescue picks them up.
	if _, err := conn.ExecContext(ctx, `UPDATE invocations SET lease_until = 0 WHERE state = 'running'`); err != nil {
		return fmt.Errorf("expire leases: %w", err)
	}
	if s.opts.Synchronous == "FULL" {
		// The log exists now (the connection wrote through it) and stays while the
		// writer's connection is open: SQLite reuses it from its start after a
		// checkpoint and never truncates it (journal_size_limit is not set).
		wal, err := os.OpenFile(s.path+"-wal", os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open the write-ahead log: %w", err)
		}
		if err := syncFile(wal, s.opts.Fsync); err != nil {
			_ = wal.Close()
			return fmt.Errorf("sync the write-ahead log: %w", err)
		}
		s.wal = wal
		s.syncQ = make(chan []*request, 64)
		s.syncDone = make(chan struct{})
	}

	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", ms))
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", "cache_size(-16384)")
	rdb, err := sql.Open("sqlite", s.path+"?"+rq.Encode())
	if err != nil {
		return err
	}
	s.rdb = rdb
	rdb.SetMaxOpenConns(s.opts.ReadConns)
	rdb.SetMaxIdleConns(s.opts.ReadConns)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	if err := rdb.PingContext(ctx); err != nil {
		return err
	}
	return nil
}

// Path returns the database file.
func (s *Store) Path() string { return s.path }

// Close stops the writer, waits for the transaction in progress, and closes the
// database and its lock. Calls still waiting for the writer fail with ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		if s.wal != nil {
			close(s.syncQ)
			<-s.syncDone
		}
		s.prepMu.Lock()
		s.prepClosed = true
		s.prepMu.Unlock()
		s.prep.Wait()
		var errs []error
		s.w.close()
		if s.wal != nil {
			if err := s.wal.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.rstmts.Range(func(_, v any) bool {
			_ = v.(*sql.Stmt).Close()
			return true
		})
		if err := s.rdb.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := s.wdb.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := unlockFile(s.lock); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
