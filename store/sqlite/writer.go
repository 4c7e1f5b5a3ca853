package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fnhost/fnhost/store"
)

// request is one write waiting for the writer goroutine. run executes it inside the
// group's transaction; its results go to variables the caller reads after done.
type request struct {
	ctx  context.Context
	rows int
	run  func(w *writer) error
	done chan error
	// plain, when set, are the rows of an Enqueue whose invocations are all plain (see
	// isPlain), and res its results: the writer may insert them together with those of
	// the plain requests next to it in the batch, rather than through run. With
	// finished set, plain is instead the one row of a simple finished Enqueue (see
	// isSimpleFinished), grouped with the simple finished requests next to it.
	plain    []newRow
	res      []store.EnqueueResult
	finished bool
}

// writer owns the single write connection and its prepared statements. Only the writer
// goroutine (and Open, before it starts) uses it.
type writer struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

func newWriter(conn *sql.Conn) *writer {
	return &writer{conn: conn, stmts: make(map[string]*sql.Stmt)}
}

func (w *writer) close() {
	for _, st := range w.stmts {
		_ = st.Close()
	}
	w.stmts = nil
	_ = w.conn.Close()
}

// stmt returns the prepared statement for query, preparing it on first use.
func (w *writer) stmt(query string) (*sql.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(context.Background(), query)
	if err != nil {
		return nil, err
	}
	w.stmts[query] = st
	return st, nil
}

func (w *writer) exec(query string, args ...any) (sql.Result, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.Exec(args...)
}

func (w *writer) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.Query(args...)
}

// do hands run to the writer and waits for the commit of the transaction that ran it.
// rows is the request's weight (the rows it writes), used to bound a transaction.
//
// If ctx ends before the writer starts the request, it is skipped. If ctx ends while
// the transaction is in progress, do returns ctx.Err() at once, and the request's
// effects may or may not be committed.
func (s *Store) do(ctx context.Context, rows int, run func(w *writer) error) error {
	return s.send(ctx, &request{ctx: ctx, rows: rows, run: run})
}

// send queues r, as do does, and waits for its answer.
func (s *Store) send(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.broken.Load(); err != nil {
		return *err
	}
	r.done = make(chan error, 1)
	s.queued.Add(1)
	select {
	case s.reqs <- r:
		s.queued.Add(-1)
	case <-s.quit:
		s.queued.Add(-1)
		return ErrClosed
	case <-ctx.Done():
		s.queued.Add(-1)
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runOn runs the request on the writer; a panic becomes the request's error, so that a
// bug in one request cannot stop the writer.
func (r *request) runOn(w *writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write request panicked: %v", p)
		}
	}()
	return r.run(w)
}

// writeLoop is the writer goroutine: it takes a request, drains whatever else is queued
// (up to MaxBatch requests and MaxBatchRows rows), runs them in one transaction and
// answers each one once the transaction is committed (and, with Synchronous FULL,
// synced by syncLoop).
func (s *Store) writeLoop() {
	defer close(s.done)
	batch := make([]*request, 0, s.opts.MaxBatch)
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.quit:
			return
		}
		batch = append(batch[:0], first)
		rows := first.rows
	drain:
		for len(batch) < s.opts.MaxBatch && rows < s.opts.MaxBatchRows {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				rows += r.rows
			default:
				break drain
			}
		}
		s.runBatch(batch)
		clear(batch)
	}
}

// runBatch runs a group of requests in one transaction. Each request runs in its own
// savepoint: a failing request is rolled back alone and gets its error, the others
// commit. If the transaction itself fails, every request gets the error.
func (s *Store) runBatch(batch []*request) {
	w := s.w
	live := make([]*request, 0, len(batch))
	broken := s.broken.Load()
	for _, r := range batch {
		if broken != nil {
			r.done <- *broken
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	s.batches.Add(1)
	errs := make([]error, len(live))
	fail := func(err error) {
		_, _ = w.exec(`ROLLBACK`)
		for _, r := range live {
			r.done <- err
		}
	}
	if _, err := w.exec(`BEGIN IMMEDIATE`); err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	if len(live) == 1 {
		// A transaction of one request needs no savepoint: it is the savepoint.
		if err := live[0].runOn(w); err != nil {
			_, _ = w.exec(`ROLLBACK`)
			live[0].done <- err
			return
		}
	} else {
		// runOne runs live[i] in its own savepoint; an error it returns breaks the
		// transaction.
		runOne := func(i int) error {
			if _, err := w.exec(`SAVEPOINT req`); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			if err := live[i].runOn(w); err != nil {
				errs[i] = err
				if _, rerr := w.exec(`ROLLBACK TO req`); rerr != nil {
					return fmt.Errorf("roll back a failed request (%v): %w", err, rerr)
				}
			}
			if _, err := w.exec(`RELEASE req`); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
			return nil
		}
		for i := 0; i < len(live); {
			j := i
			for j < len(live) && live[j].plain != nil && live[j].finished == live[i].finished {
				j++
			}
			if j-i > 1 {
				// A run of plain (or of simple finished) Enqueues: one insert for
				// all, or, if some row of theirs conflicts or fails, each request on
				// its own as usual.
				done, err := w.insertPlain(live[i:j])
				if err != nil {
					fail(err)
					return
				}
				if done {
					i = j
					continue
				}
			} else {
				j = i + 1
			}
			for ; i < j; i++ {
				if err := runOne(i); err != nil {
					fail(err)
					return
				}
			}
		}
	}
	if _, err := w.exec(`COMMIT`); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	if s.syncQ == nil {
		for i, r := range live {
			r.done <- errs[i]
		}
		return
	}
	// Failed requests wrote nothing: they need no sync. The others wait for the sync
	// of the log, which runs while this goroutine starts the next transaction.
	ok := live[:0]
	for i, r := range live {
		if errs[i] != nil {
			r.done <- errs[i]
			continue
		}
		ok = append(ok, r)
	}
	if len(ok) > 0 {
		s.syncQ <- ok
	}
}

// insertPlain inserts the rows of plain Enqueue requests together, insertChunk rows per
// statement, in one savepoint, and fills in their results. If a row conflicts (its id is
// already stored, or repeated among reqs) or a statement fails, it rolls the savepoint
// back and reports false, leaving the requests for the caller to run one by one, which
// tells each its duplicates or its error. An error it returns breaks the transaction.
//
// Requests with finished set (all of reqs, or none) have their row inserted in its
// final state and their attempt rows inserted together too. An invocation of theirs
// that finished with children already awaiting it (stored with its id as their parent
// before it) also sends them back to be run one by one, which wakes or cancels them.
func (w *writer) insertPlain(reqs []*request) (bool, error) {
	if _, err := w.exec(`SAVEPOINT plain`); err != nil {
		return false, fmt.Errorf("savepoint: %w", err)
	}
	ok := w.insertPlainRows(reqs)
	if ok && reqs[0].finished {
		ok = w.finishPlain(reqs)
	}
	if !ok {
		if _, err := w.exec(`ROLLBACK TO plain`); err != nil {
			return false, fmt.Errorf("roll back a combined insert: %w", err)
		}
	}
	if _, err := w.exec(`RELEASE plain`); err != nil {
		return false, fmt.Errorf("release savepoint: %w", err)
	}
	if ok {
		for _, r := range reqs {
			for k := range r.plain {
				r.res[k] = store.EnqueueResult{ID: r.plain[k].id}
			}
		}
	}
	return ok, nil
}

// insertPlainRows runs the inserts of insertPlain and reports whether every row was
// inserted.
func (w *writer) insertPlainRows(reqs []*request) bool {
	total := 0
	for _, r := range reqs {
		total += len(r.plain)
	}
	query, width := &insertSQL, insertWidth
	if reqs[0].finished {
		query, width = &insertFinishedSQL, finishedWidth
	}
	args := make([]any, 0, min(total, insertChunk)*width)
	n := 0
	flush := func() bool {
		res, err := w.exec(query.get(n), args...)
		if err != nil {
			return false
		}
		got, err := res.RowsAffected()
		ok := err == nil && got == int64(n)
		args, n = args[:0], 0
		return ok
	}
	for _, r := range reqs {
		for k := range r.plain {
			args = append(args, r.plain[k].args[:width]...)
			n++
			if n == insertChunk && !flush() {
				return false
			}
		}
	}
	return n == 0 || flush()
}

// finishPlain applies the rest of the completions of the finished rows of reqs, once
// insertPlainRows has inserted them all: their attempt rows, rowChunk per statement. It
// reports false if a statement fails or if one of the invocations that reached a
// terminal state has awaiting children, which finishInserted handles.
func (w *writer) finishPlain(reqs []*request) bool {
	args := make([]any, 0, min(len(reqs), rowChunk)*attemptWidth)
	var ended []string
	var tally throughput
	n := 0
	for _, r := range reqs {
		for k := range r.plain {
			row := &r.plain[k]
			c := row.done
			tally.add(row.function, c)
			args = c.appendAttempt(args, claimed{attempt: 1, started: sql.NullInt64{Int64: row.created, Valid: true}})
			n++
			if n == rowChunk {
				if _, err := w.exec(attemptSQL.get(n), args...); err != nil {
					return false
				}
				args, n = args[:0], 0
			}
			if c.State.Terminal() {
				ended = append(ended, row.id)
			}
		}
	}
	if n > 0 {
		if _, err := w.exec(attemptSQL.get(n), args...); err != nil {
			return false
		}
	}
	if err := w.addThroughput(tally); err != nil {
		return false
	}
	if len(ended) == 0 {
		return true
	}
	waiting, err := w.awaitingParents(ended)
	return err == nil && len(waiting) == 0
}

// syncLoop syncs the write-ahead log for the committed transactions the writer hands
// over, all those queued at once, and then answers their requests. A failed sync
// breaks the store: the kernel may have dropped the unsynced pages, so nothing written
// since can be trusted to be durable.
func (s *Store) syncLoop() {
	defer close(s.syncDone)
	var waiting []*request
	for {
		first, ok := <-s.syncQ
		if !ok {
			return
		}
		waiting = append(waiting[:0], first...)
		open := true
	drain:
		for {
			select {
			case more, ok := <-s.syncQ:
				if !ok {
					open = false
					break drain
				}
				waiting = append(waiting, more...)
			default:
				break drain
			}
		}
		var err error
		if b := s.broken.Load(); b != nil {
			err = *b
		} else if serr := syncFile(s.wal, s.opts.Fsync); serr != nil {
			err = fmt.Errorf("sync the write-ahead log of %s: %w", s.path, serr)
			s.broken.Store(&err)
		}
		for _, r := range waiting {
			r.done <- err
		}
		clear(waiting)
		if !open {
			return
		}
	}
}
