// Package postgres is the store of fnhost for several instances sharing one database:
// PostgreSQL through pgx v5.
//
// Every instance is a client of the same tables, so the store enforces everything the
// contract makes unique in the database itself, where concurrent instances meet:
//
//   - Claim locks the rows it takes with FOR UPDATE SKIP LOCKED, so that two instances
//     never claim the same invocation and never wait for each other's rows.
//   - Ids, dedup keys (a partial unique index) and receipts (their primary key) are
//     unique constraints; an Enqueue that raced another on one of them, and lost,
//     finds out from its INSERT … ON CONFLICT DO NOTHING (which waits for the other
//     transaction) and is run again, seeing the winner.
//   - Completions, heartbeats and releases only touch rows still running under their
//     owner; CompareAndPutState is one conditional statement.
//
// A call that lost a deadlock or a serialization conflict against another instance is
// run again, transparently. Most calls are one statement, hence one round trip: a
// batch of invocations is inserted from arrays (unnest), a batch of completions applied
// by one statement that also records the attempts and wakes or cancels the
// continuations.
//
// The store implements store.Notifier with LISTEN/NOTIFY: an instance that made work
// ready notifies the channel fnhost_<schema>, and every instance that asked for Notify
// listens on it with a connection of its own.
//
// The location is a PostgreSQL URL, postgres://user:password@host:port/db?sslmode=…,
// with two parameters of fnhost's: schema (default fnhost), the schema that holds the
// tables (created when missing), and migrate=false, which leaves the migrations to
// Migrate (`fnhost migrate`) instead of applying them at Open. The pool's own
// pool_max_conns and friends go to pgxpool.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fnhost/fnhost/store"
)

func init() {
	store.Register("postgres", func(ctx context.Context, location string) (store.Store, error) {
		return Open(ctx, location)
	}, func(ctx context.Context, location string) (int, int, error) {
		n, err := Migrate(ctx, location)
		return n, SchemaVersion(), err
	})
}

// DefaultSchema is the schema of the tables when the location names none.
const DefaultSchema = "fnhost"

const (
	// notifyInterval is the least time between two notifications an instance sends to
	// the others: work made ready meanwhile is announced by the next one. A
	// notification is a transaction of its own, and PostgreSQL serializes the commits
	// of notifying transactions, so the store never notifies from the writing
	// transaction and sends at most one notification at a time.
	notifyInterval = 5 * time.Millisecond
	// pruneChunk is how many invocations one Prune transaction deletes at most.
	pruneChunk = 5000
)

// Location is a parsed storage location.
type Location struct {
	// ConnString is the URL for pgx, without the parameters of fnhost.
	ConnString string
	// Schema holds the tables.
	Schema string
	// MaxConnsSet tells whether the URL sets pool_max_conns.
	MaxConnsSet bool
	// NoMigrate (migrate=false) leaves the schema as it is: Open fails unless it is at
	// the version this fnhost knows, for deployments that run `fnhost migrate` as a step
	// of their own.
	NoMigrate bool
}

// ParseLocation splits a storage location, postgres://…?schema=NAME&migrate=false&…,
// into the URL pgx takes and the parameters of fnhost.
func ParseLocation(location string) (Location, error) {
	u, err := url.Parse(location)
	if err != nil {
		return Location{}, fmt.Errorf("postgres location: %w", redact(err))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return Location{}, fmt.Errorf("postgres location %s: want postgres://user:password@host:port/db", u.Redacted())
	}
	q := u.Query()
	loc := Location{Schema: DefaultSchema}
	if q.Has("schema") {
		loc.Schema = q.Get("schema")
		q.Del("schema")
	}
	if loc.Schema == "" {
		return Location{}, fmt.Errorf("postgres location %s: the schema is empty", u.Redacted())
	}
	if q.Has("migrate") {
		migrate, err := strconv.ParseBool(q.Get("migrate"))
		if err != nil {
			return Location{}, fmt.Errorf("postgres location %s: migrate must be true or false", u.Redacted())
		}
		loc.NoMigrate = !migrate
		q.Del("migrate")
	}
	loc.MaxConnsSet = q.Has("pool_max_conns")
	u.RawQuery = q.Encode()
	loc.ConnString = u.String()
	return loc, nil
}

// redact keeps a password out of a URL parse error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool    *pgxpool.Pool
	channel string
	// token marks the notifications this instance sends, so that its listener does
	// not wake it for work it announced to itself already.
	token string

	// notify is the channel of Notify; the listener starts on its first call.
	notify     chan struct{}
	listenOnce sync.Once
	// sendReq asks the sender for a notification (coalesced).
	sendReq chan struct{}
	quit    chan struct{}
	wg      sync.WaitGroup
	// mu guards closed, which keeps Notify from starting the listener after Close.
	mu     sync.Mutex
	closed bool

	closeOnce sync.Once
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// Open opens the store at location, applying the migrations its schema lacks unless
// the location says migrate=false.
func Open(ctx context.Context, location string) (*Store, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	cfg, err := poolConfig(loc)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if loc.NoMigrate {
		if err := checkVersion(ctx, cfg.ConnConfig, loc.Schema); err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
	} else if _, err := migrate(ctx, cfg.ConnConfig, loc.Schema); err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	s := &Store{
		pool:    pool,
		channel: channelName(loc.Schema),
		token:   hex.EncodeToString(token),
		notify:  make(chan struct{}, 1),
		sendReq: make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	s.wg.Add(1)
	go s.sender()
	return s, nil
}

// poolConfig is the pool configuration of loc: the schema is every connection's
// search_path, JIT compilation (which costs more than it saves on short statements) is
// off, and the pool has at least 8 connections unless the URL says otherwise.
func poolConfig(loc Location) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(loc.ConnString)
	if err != nil {
		return nil, err
	}
	if !loc.MaxConnsSet {
		cfg.MaxConns = int32(max(8, 2*runtime.NumCPU()))
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["search_path"] = pgx.Identifier{loc.Schema}.Sanitize()
	if _, ok := rp["jit"]; !ok {
		rp["jit"] = "off"
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "fnhost"
	}
	return cfg, nil
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the listener and the notifications and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

// maxTries bounds how often a call that lost a race against another instance (a
// deadlock, a serialization failure, a unique key taken meanwhile) runs again.
const maxTries = 20

// errRetry makes a transaction run again: it raced another instance and lost.
var errRetry = errors.New("postgres: raced another instance")

// retryable reports whether err is a race that running the call again resolves.
func retryable(err error) bool {
	if errors.Is(err, errRetry) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// retry runs fn until it succeeds, fails with an error that is not a lost race, or has
// run maxTries times.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for try := 0; try < maxTries; try++ {
		if err = fn(); err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if try > 2 {
			time.Sleep(time.Duration(try) * time.Millisecond)
		}
	}
	return err
}

// inTx runs fn in a transaction, running it again (in a new one) when it lost a race.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, fn)
	})
}

// querier is what a statement runs on: the pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}
