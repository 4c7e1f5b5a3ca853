package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// List returns invocations matching f, newest (largest id) first, without event and
// attempts. Since is inclusive and Until exclusive. The cursor is the id of the last
// item of the previous page; NextCursor is empty on the last page.
//
// It reads the index store.PlanList picks for f. With MaxScan, the conditions that index
// leaves are checked on at most MaxScan rows of it: a first query finds the id where
// those rows end, and the page stops there.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	plan, err := store.PlanList(f)
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	from := `invocations`
	if plan.Index != "" {
		from += ` INDEXED BY invocations_` + plan.Index
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// floor is the id the scan window ends at, when MaxScan cuts it short.
	floor := ""
	if f.MaxScan > 0 && len(plan.Checked) > 0 {
		var last sql.NullString
		var n int
		where, args := whereSQL(plan.OnIndex)
		q := `SELECT min(id), count(*) FROM (SELECT id FROM ` + from + where + ` ORDER BY id DESC LIMIT ?)`
		if err := s.txQueryRow(ctx, tx, q, append(args, f.MaxScan)...).Scan(&last, &n); err != nil {
			return store.Page{}, fmt.Errorf("list: %w", err)
		}
		if n >= f.MaxScan && last.Valid {
			floor = last.String
			plan.Checked = append(plan.Checked, store.Cond{SQL: "id >= ?", Arg: floor})
		}
	}
	where, args := whereSQL(append(plan.OnIndex, plan.Checked...))
	q := `SELECT ` + invColumns + ` FROM ` + from + where + ` ORDER BY id DESC LIMIT ?`
	rs, err := s.txQuery(ctx, tx, q, append(args, plan.Limit+1)...)
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	defer rs.Close()
	items := make([]*fnhost.Invocation, 0, min(plan.Limit, 64))
	for rs.Next() {
		inv, err := scanInvocation(rs, false)
		if err != nil {
			return store.Page{}, fmt.Errorf("list: %w", err)
		}
		items = append(items, inv)
	}
	if err := rs.Err(); err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	return plan.Page(items, floor), nil
}

// whereSQL renders conditions as a WHERE clause (empty without conditions) and returns
// it with their arguments, a created_at time as Unix microseconds.
func whereSQL(conds []store.Cond) (string, []any) {
	return store.Where(conds, func(int) string { return "?" }, func(a any) any {
		if t, ok := a.(time.Time); ok {
			return micros(t)
		}
		return a
	})
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
		c.Set(fnhost.State(state), n)
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
