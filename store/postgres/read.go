package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// get reads an invocation with its event and attempts, in one round trip.
func get(ctx context.Context, q querier, id string) (*fnhost.Invocation, error) {
	var inv *fnhost.Invocation
	var attempts []fnhost.Attempt
	b := &pgx.Batch{}
	b.Queue(`SELECT `+invColumns+`, event FROM invocations WHERE id = $1`, id).Query(func(rs pgx.Rows) error {
		if !rs.Next() {
			return rs.Err()
		}
		var err error
		inv, err = scanInvocation(rs, true)
		return err
	})
	b.Queue(`SELECT `+attemptColumns+` FROM attempts WHERE invocation_id = $1 ORDER BY number`, id).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			a, err := scanAttempt(rs)
			if err != nil {
				return err
			}
			attempts = append(attempts, a)
		}
		return rs.Err()
	})
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if inv == nil {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	inv.Attempts = attempts
	return inv, nil
}

// Get returns one invocation with its event and its attempts, ordered by number.
func (s *Store) Get(ctx context.Context, id string) (*fnhost.Invocation, error) {
	inv, err := get(ctx, s.pool, id)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	return inv, nil
}

// List returns invocations matching f, newest (largest id) first, without event and
// attempts. Since is inclusive and Until exclusive. The cursor is the id of the last
// item of the previous page; NextCursor is empty on the last page.
//
// It tells the conditions an index answers from those checked row by row as
// store.PlanList does (the planner picks the index); with MaxScan, a first query finds
// the id where MaxScan rows of the former end, and the page stops there.
func (s *Store) List(ctx context.Context, f store.Filter) (store.Page, error) {
	plan, err := store.PlanList(f)
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	floor := ""
	if f.MaxScan > 0 && len(plan.Checked) > 0 {
		var last *string
		var n int
		where, args := whereSQL(plan.OnIndex)
		q := `SELECT min(id), count(*) FROM (SELECT id FROM invocations` + where + ` ORDER BY id DESC LIMIT ` +
			strconv.Itoa(f.MaxScan) + `) w`
		if err := s.pool.QueryRow(ctx, q, args...).Scan(&last, &n); err != nil {
			return store.Page{}, fmt.Errorf("list: %w", err)
		}
		if n >= f.MaxScan && last != nil {
			floor = *last
			plan.Checked = append(plan.Checked, store.Cond{SQL: "id >= ?", Arg: floor})
		}
	}
	where, args := whereSQL(append(plan.OnIndex, plan.Checked...))
	// The ids first, then their rows: the ids alone come from the index in its order
	// (an index-only scan that stops after the page), which the planner does not always
	// choose for whole rows when it misjudges how many match (a function whose
	// invocations mostly failed, say): it would fetch every match and sort them.
	q := `SELECT ` + invColumns + ` FROM invocations WHERE id IN (SELECT id FROM invocations` + where +
		` ORDER BY id DESC LIMIT ` + strconv.Itoa(plan.Limit+1) + `) ORDER BY id DESC`
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	items := make([]*fnhost.Invocation, 0, min(plan.Limit, 64))
	for rows.Next() {
		inv, err := scanInvocation(rows, false)
		if err != nil {
			return store.Page{}, fmt.Errorf("list: %w", err)
		}
		items = append(items, inv)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, fmt.Errorf("list: %w", err)
	}
	return plan.Page(items, floor), nil
}

// whereSQL renders conditions as a WHERE clause (empty without conditions) with
// numbered parameters, and returns it with their arguments.
func whereSQL(conds []store.Cond) (string, []any) {
	return store.Where(conds, func(n int) string { return "$" + strconv.Itoa(n) }, func(a any) any { return a })
}

// Counts returns the invocations of each function in every state but succeeded, from
// the indexes of those states: the claim index for pending and scheduled (with the
// backlog due at now), the running index, and the function and state index for the
// others.
func (s *Store) Counts(ctx context.Context, now time.Time) (map[string]store.FunctionCounts, error) {
	out := map[string]store.FunctionCounts{}
	b := &pgx.Batch{}
	b.Queue(`SELECT function, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'scheduled'),
			count(*) FILTER (WHERE state = 'pending' OR run_at <= $1),
			min(run_at) FILTER (WHERE state = 'pending' OR run_at <= $1)
		FROM invocations WHERE state IN ('pending', 'scheduled') GROUP BY function`, now).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var fn string
			var c store.FunctionCounts
			var oldest *time.Time
			if err := rs.Scan(&fn, &c.Pending, &c.Scheduled, &c.Ready, &oldest); err != nil {
				return err
			}
			if oldest != nil {
				c.OldestReady = oldest.UTC()
			}
			out[fn] = c
		}
		return rs.Err()
	})
	b.Queue(`SELECT function, 'running', count(*) FROM invocations WHERE state = 'running' GROUP BY function
		UNION ALL
		SELECT function, state, count(*) FROM invocations
		WHERE state NOT IN ('pending', 'running', 'succeeded') AND state <> 'scheduled' GROUP BY function, state`).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var fn, state string
			var n int64
			if err := rs.Scan(&fn, &state, &n); err != nil {
				return err
			}
			c := out[fn]
			c.Set(fnhost.State(state), n)
			out[fn] = c
		}
		return rs.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	return out, nil
}

// Throughput returns the buckets of the minutes from since on, by minute, then
// function, the shards of each summed.
func (s *Store) Throughput(ctx context.Context, since time.Time) ([]store.Bucket, error) {
	rows, err := s.pool.Query(ctx, `SELECT minute, function, sum(succeeded), sum(failed), sum(dead) FROM throughput
		WHERE minute >= $1 GROUP BY minute, function ORDER BY minute, function`, since.Truncate(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	defer rows.Close()
	var out []store.Bucket
	for rows.Next() {
		var b store.Bucket
		if err := rows.Scan(&b.Minute, &b.Function, &b.Succeeded, &b.Failed, &b.Dead); err != nil {
			return nil, fmt.Errorf("throughput: %w", err)
		}
		b.Minute = b.Minute.UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
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
	rows, err := s.pool.Query(ctx, `SELECT state, count(*),
			count(*) FILTER (WHERE state = 'pending' OR (state = 'scheduled' AND run_at <= $1))
		FROM invocations GROUP BY state`, now)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n, ready int64
		if err := rows.Scan(&state, &n, &ready); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		st.ByState[fnhost.State(state)] = n
		st.Ready += ready
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// cancelTreeSQL cancels the awaiting children of $1, and theirs, recursively, as
// finished at $2.
const cancelTreeSQL = `WITH RECURSIVE tree(id) AS (
		SELECT id FROM invocations WHERE parent_id = $1 AND state = 'awaiting'
		UNION
		SELECT c.id FROM tree t JOIN invocations c ON c.parent_id = t.id WHERE c.state = 'awaiting'
	)
	UPDATE invocations SET state = 'cancelled', finished_at = $2
	WHERE id IN (SELECT id FROM tree) AND state = 'awaiting'`

// lockInvocation reads an invocation with its attempts, its row locked until the end of
// the transaction.
func lockInvocation(ctx context.Context, tx pgx.Tx, id string) (*fnhost.Invocation, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM invocations WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return get(ctx, tx, id)
}

// Cancel cancels an invocation that has not finished, and its awaiting children. A
// running invocation loses its lease (its next heartbeat reports it lost, its completion
// is dropped) and its attempt is recorded as cancelled.
func (s *Store) Cancel(ctx context.Context, id string, now time.Time) (*fnhost.Invocation, error) {
	var out *fnhost.Invocation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inv, err := lockInvocation(ctx, tx, id)
		if err != nil {
			return err
		}
		if inv.State.Terminal() {
			return fmt.Errorf("invocation %s is %s: %w", id, inv.State, store.ErrConflict)
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE invocations SET state = 'cancelled', finished_at = $1, lease_owner = '', lease_until = NULL
			WHERE id = $2`, now, id)
		if inv.State == fnhost.StateRunning {
			started := now
			if inv.StartedAt != nil {
				started = *inv.StartedAt
			}
			b.Queue(`INSERT INTO attempts (invocation_id, number, started_at, finished_at, duration_ms, outcome,
					error, log, log_truncated, owner)
				VALUES ($1, $2, $3, $4, $5, 'cancelled', 'cancelled', '', false, $6)
				`+upsertAttempt,
				id, inv.Attempt, started, now, float64(now.Sub(started).Microseconds())/1000, inv.LeaseOwner)
		}
		b.Queue(cancelTreeSQL, id, now)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		out, err = get(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	return out, nil
}

// Retry makes a finished invocation pending again, with max_attempts set to its
// attempt count plus extraAttempts (at least one more). The `then` continuations
// cancelled when it failed or was cancelled wait for it again.
func (s *Store) Retry(ctx context.Context, id string, now time.Time, extraAttempts int) (*fnhost.Invocation, error) {
	if extraAttempts <= 0 {
		extraAttempts = 1
	}
	var out *fnhost.Invocation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inv, err := lockInvocation(ctx, tx, id)
		if err != nil {
			return err
		}
		if !inv.State.Terminal() {
			return fmt.Errorf("invocation %s is %s: %w", id, inv.State, store.ErrConflict)
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE invocations SET state = 'pending', run_at = $1, max_attempts = attempt + $2,
				finished_at = NULL, lease_owner = '', lease_until = NULL
			WHERE id = $3`, now, extraAttempts, id)
		if inv.State != fnhost.StateSucceeded {
			b.Queue(`WITH RECURSIVE tree(id) AS (
					SELECT id FROM invocations WHERE parent_id = $1 AND state = 'cancelled' AND continuation = 'then'
					UNION
					SELECT c.id FROM tree t JOIN invocations c ON c.parent_id = t.id
					WHERE c.state = 'cancelled' AND c.continuation = 'then'
				)
				UPDATE invocations SET state = 'awaiting', finished_at = NULL
				WHERE id IN (SELECT id FROM tree)`, id)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		out, err = get(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	s.announce()
	return out, nil
}

// pruneSQL deletes up to $2 terminal invocations that finished before $1, with their
// attempts, passing over rows another transaction holds.
const pruneSQL = `WITH d AS (
		SELECT id FROM invocations
		WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	),
	a AS (DELETE FROM attempts WHERE invocation_id = ANY(ARRAY(SELECT id FROM d)))
	DELETE FROM invocations WHERE id = ANY(ARRAY(SELECT id FROM d))`

// Prune deletes finished invocations (succeeded, failed, cancelled) whose finished_at is
// before the given time, with their attempts, pruneChunk per transaction.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := retry(ctx, func() error {
			tag, err := s.pool.Exec(ctx, pruneSQL, before, pruneChunk)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		total += int(n)
		if n < pruneChunk {
			break
		}
	}
	err := retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM throughput WHERE minute < $1`, before.Truncate(time.Minute))
		return err
	})
	if err != nil {
		return total, fmt.Errorf("prune throughput: %w", err)
	}
	return total, nil
}
