package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// rstmt returns the statement for query prepared on the read pool, preparing it on
// first use: SQLite parses a query once per connection, not once per call.
func (s *Store) rstmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.rstmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.rstmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// cachedStmt returns the pool statement for query if it is prepared already. If not,
// it prepares it in the background for the next call and returns nil: a caller inside
// a read transaction holds one pool connection, and preparing on the pool needs
// another, so two such callers could otherwise wait for each other forever.
func (s *Store) cachedStmt(query string) *sql.Stmt {
	if st, ok := s.rstmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if !s.prepClosed {
		// Close waits for it: a connection it still held would outlive the store.
		s.prep.Add(1)
		go func() {
			defer s.prep.Done()
			_, _ = s.rstmt(context.Background(), query)
		}()
	}
	return nil
}

// txQueryRow and txQuery run a query inside the read transaction tx, through the
// pool's prepared statement once there is one.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := s.cachedStmt(query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

func (s *Store) txQuery(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if st := s.cachedStmt(query); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// Get returns one invocation with its event and its attempts, ordered by number.
func (s *Store) Get(ctx context.Context, id string) (*fnhost.Invocation, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	inv, err := scanInvocation(s.txQueryRow(ctx, tx, `SELECT `+invColumns+`, event FROM invocations WHERE id = ?`, id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	rs, err := s.txQuery(ctx, tx, `SELECT `+attemptColumns+` FROM attempts WHERE invocation_id = ? ORDER BY number`, id)
	if err != nil {
		return nil, fmt.Errorf("get %s: attempts: %w", id, err)
	}
	defer rs.Close()
	for rs.Next() {
		a, err := scanAttempt(rs)
		if err != nil {
			return nil, fmt.Errorf("get %s: attempts: %w", id, err)
		}
		inv.Attempts = append(inv.Attempts, a)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("get %s: attempts: %w", id, err)
	}
	return inv, nil
}

// DefaultListLimit is the page size of a List whose filter sets no limit.
const DefaultListLimit = 100

// MaxListLimit caps the page size of a List.
const MaxListLimit = 1000

// List returns invocations matching f, newest (largest id) first, without event and
// attempts. Since is inclusive and Until exclusive. The cursor is the id of the last
// item of the previous page; NextCursor is empty on the last page.
//
// Each filter picks the index that answers the most of it: the parent, a state that has
// an index (with the function, when given), running, the function, or else the ids.
// Since and Until bound the ids (ULIDs of the creation time) and are checked exactly on
// created_at. With MaxScan, the filters that index leaves are checked on at most MaxScan
// rows of it: a first query finds the id where those rows end, and the page stops there.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var (
		from      = `invocations`
		idx, rest []string
		idxArgs   []any
		restArgs  []any
	)
	onIndex := func(cond string, args ...any) { idx, idxArgs = append(idx, cond), append(idxArgs, args...) }
	checked := func(cond string, args ...any) { rest, restArgs = append(rest, cond), append(restArgs, args...) }
	function, state := f.Function != "", f.State != ""
	switch {
	case f.ParentID != "":
		from = `invocations INDEXED BY invocations_parent`
		onIndex("parent_id = ?", f.ParentID)
	case indexedState(f.State) && function:
		from = `invocations INDEXED BY invocations_function_state`
		onIndex("function = ?", f.Function)
		onIndex("state = ?", string(f.State))
		onIndex(`state NOT IN ('pending', 'running', 'succeeded')`)
		function, state = false, false
	case indexedState(f.State):
		from = `invocations INDEXED BY invocations_state`
		onIndex("state = ?", string(f.State))
		onIndex(`state NOT IN ('pending', 'running', 'succeeded')`)
		state = false
	case f.State == fnhost.StateRunning:
		from = `invocations INDEXED BY invocations_running`
		onIndex(`state = 'running'`)
		state = false
	case function:
		from = `invocations INDEXED BY invocations_function`
		onIndex("function = ?", f.Function)
		function = false
	}
	if function {
		checked("function = ?", f.Function)
	}
	if state {
		checked("state = ?", string(f.State))
	}
	if f.Trigger != "" {
		checked("trigger = ?", f.Trigger)
	}
	if !f.Since.IsZero() {
		onIndex("id >= ?", fnhost.MinIDAt(f.Since))
		checked("created_at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		onIndex("id < ?", fnhost.MinIDAt(f.Until.Add(time.Millisecond)))
		checked("created_at < ?", micros(f.Until))
	}
	if f.Cursor != "" {
		onIndex("id < ?", f.Cursor)
	}
	where := func(conds []string) string {
		if len(conds) == 0 {
			return ""
		}
		return ` WHERE ` + strings.Join(conds, " AND ")
	}

	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// floor is the id the scan window ends at, when MaxScan cuts it short.
	floor := ""
	if f.MaxScan > 0 && len(rest) > 0 {
		var last sql.NullString
		var n int
		q := `SELECT min(id), count(*) FROM (SELECT id FROM ` + from + where(idx) + ` ORDER BY id DESC LIMIT ?)`
		if err := s.txQueryRow(ctx, tx, q, append(slices.Clone(idxArgs), f.MaxScan)...).Scan(&last, &n); err != nil {
			return store.Page{}, fmt.Errorf("list: %w", err)
		}
		if n >= f.MaxScan && last.Valid {
			floor = last.String
			checked("id >= ?", floor)
		}
	}
	q := `SELECT ` + invColumns + ` FROM ` + from + where(append(slices.Clone(idx), rest...)) + ` ORDER BY id DESC LIMIT ?`
	args := append(append(slices.Clone(idxArgs), restArgs...), limit+1)
	rs, err := s.txQuery(ctx, tx, q, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	defer rs.Close()
	page := store.Page{Items: make([]*fnhost.Invocation, 0, min(limit, 64))}
	for rs.Next() {
		inv, err := scanInvocation(rs, false)
		if err != nil {
			return store.Page{}, fmt.Errorf("list: %w", err)
		}
		page.Items = append(page.Items, inv)
	}
	if err := rs.Err(); err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	switch {
	case len(page.Items) > limit:
		page.Items = page.Items[:limit]
		page.NextCursor = page.Items[limit-1].ID
	case floor != "":
		page.NextCursor = floor
	}
	return page, nil
}

// indexedState reports whether state has the index invocations_state (and
// invocations_function_state) of its own.
func indexedState(state fnhost.State) bool {
	switch state {
	case fnhost.StateScheduled, fnhost.StateAwaiting, fnhost.StateFailed, fnhost.StateCancelled:
		return true
	}
	return false
}

// Counts returns the invocations of each function in every state but succeeded, from
// the indexes of those states: the ready index for pending and scheduled (with the
// backlog due at now), the running index, and the function and state index for the
// others.
func (s *Store) Counts(ctx context.Context, now time.Time) (map[string]store.FunctionCounts, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	out := map[string]store.FunctionCounts{}
	rs, err := s.txQuery(ctx, tx, `SELECT function, sum(state = 'pending'), sum(state = 'scheduled'),
			sum(state = 'pending' OR run_at <= ?1), min(CASE WHEN state = 'pending' OR run_at <= ?1 THEN run_at END)
		FROM invocations INDEXED BY invocations_claim
		WHERE state IN ('pending', 'scheduled') GROUP BY function`, micros(now))
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	for rs.Next() {
		var fn string
		var c store.FunctionCounts
		var oldest sql.NullInt64
		if err := rs.Scan(&fn, &c.Pending, &c.Scheduled, &c.Ready, &oldest); err != nil {
			rs.Close()
			return nil, fmt.Errorf("counts: %w", err)
		}
		if oldest.Valid {
			c.OldestReady = fromMicros(oldest.Int64)
		}
		out[fn] = c
	}
	if err := closeRows(rs); err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	rs, err = s.txQuery(ctx, tx, `SELECT function, 'running', count(*) FROM invocations INDEXED BY invocations_running
		WHERE state = 'running' GROUP BY function
		UNION ALL
		SELECT function, state, count(*) FROM invocations INDEXED BY invocations_function_state
		WHERE state NOT IN ('pending', 'running', 'succeeded') AND state <> 'scheduled' GROUP BY function, state`)
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	for rs.Next() {
		var fn, state string
		var n int64
		if err := rs.Scan(&fn, &state, &n); err != nil {
			rs.Close()
			return nil, fmt.Errorf("counts: %w", err)
		}
		c := out[fn]
		switch fnhost.State(state) {
		case fnhost.StateRunning:
			c.Running = n
		case fnhost.StateAwaiting:
			c.Awaiting = n
		case fnhost.StateFailed:
			c.Failed = n
		case fnhost.StateCancelled:
			c.Cancelled = n
		}
		out[fn] = c
	}
	if err := closeRows(rs); err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	return out, nil
}

// closeRows closes rs and returns the error that ended its iteration, if any.
func closeRows(rs *sql.Rows) error {
	err := rs.Err()
	if cerr := rs.Close(); err == nil {
		err = cerr
	}
	return err
}

// Throughput returns the buckets of the minutes from since on, by minute, then
// function.
func (s *Store) Throughput(ctx context.Context, since time.Time) ([]store.Bucket, error) {
	st, err := s.rstmt(ctx, `SELECT minute, function, succeeded, failed, dead FROM throughput
		WHERE minute >= ? ORDER BY minute, function`)
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	rs, err := st.QueryContext(ctx, micros(since.Truncate(time.Minute)))
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	defer rs.Close()
	var out []store.Bucket
	for rs.Next() {
		var b store.Bucket
		var minute int64
		if err := rs.Scan(&minute, &b.Function, &b.Succeeded, &b.Failed, &b.Dead); err != nil {
			return nil, fmt.Errorf("throughput: %w", err)
		}
		b.Minute = fromMicros(minute)
		out = append(out, b)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	return out, nil
}

// Stats counts invocations by state (every state is present, zero or not) and those
// ready to run at now: pending, and scheduled with run_at <= now.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	st := store.Stats{ByState: make(map[fnhost.State]int64, len(fnhost.States))}
	for _, state := range fnhost.States {
		st.ByState[state] = 0
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// Succeeded rows are not indexed by state: they are the total less the others.
	var total, running, pending int64
	if err := s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM invocations`).Scan(&total); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	err = s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM invocations INDEXED BY invocations_running
		WHERE state = 'running'`).Scan(&running)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.ByState[fnhost.StateRunning] = running
	err = s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM invocations INDEXED BY invocations_claim
		WHERE state IN ('pending', 'scheduled') AND state = 'pending'`).Scan(&pending)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.ByState[fnhost.StatePending] = pending
	rs, err := s.txQuery(ctx, tx, `SELECT state, COUNT(*) FROM invocations INDEXED BY invocations_state
		WHERE state NOT IN ('pending', 'running', 'succeeded') GROUP BY state`)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer rs.Close()
	others := running + pending
	for rs.Next() {
		var state string
		var n int64
		if err := rs.Scan(&state, &n); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		st.ByState[fnhost.State(state)] = n
		others += n
	}
	if err := rs.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.ByState[fnhost.StateSucceeded] = total - others
	err = s.txQueryRow(ctx, tx, `SELECT COUNT(*) FROM invocations INDEXED BY invocations_claim
		WHERE state IN ('pending', 'scheduled') AND (state = 'pending' OR run_at <= ?)`, micros(now)).Scan(&st.Ready)
	if err != nil {
		return st, fmt.Errorf("stats: ready: %w", err)
	}
	return st, nil
}
