package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	go func() { _, _ = s.rstmt(context.Background(), query) }()
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
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var (
		where []string
		args  []any
	)
	if f.Function != "" {
		where = append(where, "function = ?")
		args = append(args, f.Function)
	}
	from := `invocations`
	switch f.State {
	case "":
	case fnhost.StateRunning:
		from = `invocations INDEXED BY invocations_running`
		where = append(where, "state = 'running'")
	case fnhost.StateSucceeded, fnhost.StatePending:
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	default:
		from = `invocations INDEXED BY invocations_state`
		where = append(where, "state = ?", "state NOT IN ('pending', 'running', 'succeeded')")
		args = append(args, string(f.State))
	}
	if f.Trigger != "" {
		where = append(where, "trigger = ?")
		args = append(args, f.Trigger)
	}
	if f.ParentID != "" {
		where = append(where, "parent_id = ?")
		args = append(args, f.ParentID)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, micros(f.Until))
	}
	if f.Cursor != "" {
		where = append(where, "id < ?")
		args = append(args, f.Cursor)
	}
	q := `SELECT ` + invColumns + ` FROM ` + from
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1)
	st, err := s.rstmt(ctx, q)
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	rs, err := st.QueryContext(ctx, args...)
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
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = page.Items[limit-1].ID
	}
	return page, nil
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
