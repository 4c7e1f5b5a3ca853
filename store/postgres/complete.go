package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// completion is a store.Completion checked, with its defaults applied.
type completion struct {
	c *store.Completion
	store.Done
	// aStarted is when the attempt started; zero takes it from the invocation.
	aStarted time.Time
	spawn    []newRow
	dup      bool // a second completion of the same id in one call
}

// prepareCompletion checks one completion. A finish time it lacks is *now, which it
// sets on first use.
func prepareCompletion(c *store.Completion, now *time.Time) (completion, error) {
	d, err := store.NormalizeCompletion(c, now)
	if err != nil {
		return completion{}, err
	}
	spawn, err := prepareNew(c.Spawn)
	if err != nil {
		return completion{}, fmt.Errorf("completion %s: spawn: %w", c.ID, err)
	}
	return completion{c: c, Done: d, aStarted: c.Attempt.StartedAt, spawn: spawn}, nil
}

// finishedAt is the invocation's finished_at: NULL for a retry.
func (c *completion) finishedAt() pgtype.Timestamptz {
	if !c.RunAt.IsZero() {
		return pgtype.Timestamptz{}
	}
	return ts(c.Finished)
}

// compArrays are completions as the arrays of completionInput.
type compArrays struct {
	id, state         []string
	runAt, finishedAt []pgtype.Timestamptz
	output            [][]byte
	errStr, owner     []string
	finished          []time.Time
	thenEvent         [][]byte
	aStarted          []pgtype.Timestamptz
	aDuration         []float64
	aOutcome, aError  []string
	aLog              []string
	aTrunc            []bool
	aOwner            []string
}

func (a *compArrays) add(c *completion) {
	at := c.c.Attempt
	a.id = append(a.id, c.c.ID)
	a.state = append(a.state, string(c.State))
	a.runAt = append(a.runAt, ts(c.RunAt))
	a.finishedAt = append(a.finishedAt, c.finishedAt())
	a.output = append(a.output, nullBytes(c.c.Output))
	a.errStr = append(a.errStr, c.Error)
	a.owner = append(a.owner, c.c.Owner)
	a.finished = append(a.finished, c.Finished)
	a.thenEvent = append(a.thenEvent, nullBytes(c.c.ThenEvent))
	a.aStarted = append(a.aStarted, ts(c.aStarted))
	a.aDuration = append(a.aDuration, at.DurationMS)
	a.aOutcome = append(a.aOutcome, string(c.Outcome))
	a.aError = append(a.aError, at.Error)
	a.aLog = append(a.aLog, at.Log)
	a.aTrunc = append(a.aTrunc, at.LogTruncated)
	a.aOwner = append(a.aOwner, c.AttemptOwner)
}

func (a *compArrays) args() []any {
	return []any{a.id, a.state, a.runAt, a.finishedAt, a.output, a.errStr, a.owner, a.finished, a.thenEvent,
		a.aStarted, a.aDuration, a.aOutcome, a.aError, a.aLog, a.aTrunc, a.aOwner}
}

// completionInput is the CTE x of the completions passed as the arrays of
// compArrays.args.
const completionInput = `x AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bytea[],
			$6::text[], $7::text[], $8::timestamptz[], $9::bytea[], $10::timestamptz[], $11::float8[],
			$12::text[], $13::text[], $14::text[], $15::bool[], $16::text[])
		AS x(id, state, run_at, finished_at, output, error, owner, finished, then_event,
			a_started, a_duration, a_outcome, a_error, a_log, a_truncated, a_owner)
	)`

// upsertAttempt ends an INSERT INTO attempts: the attempt of an invocation is recorded
// once, the last record of it winning (a release after a lost lease, say).
const upsertAttempt = `ON CONFLICT (invocation_id, number) DO UPDATE SET started_at = EXCLUDED.started_at,
	finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, outcome = EXCLUDED.outcome,
	error = EXCLUDED.error, log = EXCLUDED.log, log_truncated = EXCLUDED.log_truncated, owner = EXCLUDED.owner`

// finishSQL completes the invocations whose CTE u (id, attempt, started_at, function)
// says they are to be completed, each as its row of x says: it records their attempts
// and adds them to the throughput buckets, wakes the awaiting `then` children of the
// successes (with their ThenEvent) and cancels every other awaiting descendant of the
// ended ones. It returns the ids of u and how many children woke. pre holds CTEs that
// u reads, each followed by a comma.
func finishSQL(pre, u string) string {
	return `WITH RECURSIVE ` + completionInput + `,` + pre + `
	u AS (` + u + `),
	d AS (
		SELECT x.*, u.attempt, u.function, COALESCE(x.a_started, u.started_at, x.finished) AS started
		FROM u JOIN x ON x.id = u.id
	),
	tp AS (
		-- Each connection adds to buckets of its own (shard), so that concurrent
		-- completions never wait for each other's bucket rows.
		INSERT INTO throughput AS t (minute, function, shard, succeeded, failed, dead)
		SELECT to_timestamp(floor(extract(epoch FROM finished) / 60) * 60), function, pg_backend_pid(),
			count(*) FILTER (WHERE a_outcome = 'succeeded'),
			count(*) FILTER (WHERE a_outcome IN ('failed', 'timeout')),
			count(*) FILTER (WHERE state = 'failed')
		FROM d GROUP BY 1, 2
		HAVING count(*) FILTER (WHERE a_outcome IN ('succeeded', 'failed', 'timeout') OR state = 'failed') > 0
		ON CONFLICT (minute, function, shard) DO UPDATE SET succeeded = t.succeeded + EXCLUDED.succeeded,
			failed = t.failed + EXCLUDED.failed, dead = t.dead + EXCLUDED.dead
	),
	att AS (
		INSERT INTO attempts (invocation_id, number, started_at, finished_at, duration_ms, outcome, error,
			log, log_truncated, owner)
		SELECT id, attempt, started, finished,
			CASE WHEN a_duration <> 0 THEN a_duration
				ELSE (EXTRACT(EPOCH FROM finished - started) * 1000)::float8 END,
			a_outcome, a_error, a_log, a_truncated, a_owner
		FROM d
		` + upsertAttempt + `
	),
	wake AS (
		UPDATE invocations c SET state = 'pending', run_at = d.finished, event = COALESCE(d.then_event, c.event)
		FROM d
		WHERE d.state = 'succeeded' AND c.parent_id = d.id AND c.state = 'awaiting' AND c.continuation = 'then'
		RETURNING c.id
	),
	tree(id, finished) AS (
		SELECT c.id, d.finished FROM d JOIN invocations c ON c.parent_id = d.id
		WHERE d.state IN ('succeeded', 'failed', 'cancelled') AND c.state = 'awaiting'
			AND (d.state <> 'succeeded' OR c.continuation <> 'then')
		UNION
		SELECT c.id, t.finished FROM tree t JOIN invocations c ON c.parent_id = t.id WHERE c.state = 'awaiting'
	),
	cancel AS (
		UPDATE invocations c SET state = 'cancelled', finished_at = t.finished
		FROM tree t WHERE c.id = t.id AND c.state = 'awaiting'
	)
	SELECT d.id, (SELECT count(*) FROM wake) FROM d`
}

// completeSQL applies completions to the invocations still running under their owner.
var completeSQL = finishSQL("", `UPDATE invocations i SET state = x.state, run_at = COALESCE(x.run_at, i.run_at),
			finished_at = x.finished_at, output = COALESCE(x.output, i.output), error = NULLIF(x.error, ''),
			lease_owner = '', lease_until = NULL
		FROM x WHERE i.id = x.id AND i.state = 'running' AND i.lease_owner = x.owner
		RETURNING i.id, i.attempt, i.started_at, i.function`)

// finishInsertedSQL applies the rest of the completions of invocations just inserted
// finished: attempt 1, whose start the completion holds.
var finishInsertedSQL = finishSQL("", `SELECT x.id, 1 AS attempt, NULL::timestamptz AS started_at, i.function
		FROM x JOIN invocations i ON i.id = x.id`)

// Complete records finished attempts: the invocation's next state, its attempt row, the
// wake-up or cancellation of its awaiting children, and the invocations it spawns, all
// in one transaction (one statement when nothing is spawned). Completions of
// invocations no longer running under their owner are dropped and their ids returned.
func (s *Store) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	comps := make([]completion, len(cs))
	seen := make(map[string]bool, len(cs))
	var now time.Time
	var arr compArrays
	for i := range cs {
		c := &cs[i]
		comp, err := prepareCompletion(c, &now)
		if err != nil {
			return nil, fmt.Errorf("complete: %w", err)
		}
		comp.dup = seen[c.ID]
		seen[c.ID] = true
		comps[i] = comp
	}
	hasSpawn := false
	// In id order, so that concurrent calls lock their rows in the same order.
	order := make([]*completion, 0, len(comps))
	for i := range comps {
		if !comps[i].dup {
			order = append(order, &comps[i])
			if len(comps[i].spawn) > 0 {
				hasSpawn = true
			}
		}
	}
	slices.SortFunc(order, func(a, b *completion) int { return strings.Compare(a.c.ID, b.c.ID) })
	for _, c := range order {
		arr.add(c)
	}

	var applied map[string]bool
	var ready bool
	run := func(q querier) error {
		var err error
		applied, ready, err = s.finish(ctx, q, completeSQL, &arr)
		if err != nil || !hasSpawn {
			return err
		}
		var spawn []newRow
		for i := range comps {
			if applied[comps[i].c.ID] && !comps[i].dup {
				spawn = append(spawn, comps[i].spawn...)
			}
		}
		if len(spawn) == 0 {
			return nil
		}
		_, r, err := s.insert(ctx, q, spawn)
		ready = ready || r
		return err
	}
	var err error
	if hasSpawn {
		err = s.inTx(ctx, func(tx pgx.Tx) error { return run(tx) })
	} else {
		err = retry(ctx, func() error { return run(s.pool) })
	}
	if err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	if ready {
		s.announce()
	}
	var dropped []string
	for i := range comps {
		if !applied[comps[i].c.ID] || comps[i].dup {
			dropped = append(dropped, comps[i].c.ID)
		}
	}
	return dropped, nil
}

// finish runs query (completeSQL, finishInsertedSQL or insertFinishedSQL, whose
// parameters after those of arr are more) for the completions in arr and returns the ids it applied, and whether that made work ready: a retry due at once,
// woken children.
func (s *Store) finish(ctx context.Context, q querier, query string, arr *compArrays, more ...any) (map[string]bool, bool, error) {
	rows, err := q.Query(ctx, query, append(arr.args(), more...)...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	applied := make(map[string]bool, len(arr.id))
	var woke int64
	for rows.Next() {
		var id string
		if err := rows.Scan(&id, &woke); err != nil {
			return nil, false, err
		}
		applied[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	ready := woke > 0
	for i, id := range arr.id {
		if applied[id] && arr.state[i] == string(fnhost.StatePending) {
			ready = true
		}
	}
	return applied, ready, nil
}

// Heartbeat extends the lease of the invocations still running under owner and returns
// the ids it no longer holds.
func (s *Store) Heartbeat(ctx context.Context, owner string, ids []string, leaseUntil time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var held map[string]bool
	err := retry(ctx, func() error {
		var err error
		held, err = queryIDs(ctx, s.pool, `UPDATE invocations SET lease_until = $1
			WHERE id = ANY($2) AND state = 'running' AND lease_owner = $3
			RETURNING id`, leaseUntil, sortedCopy(ids), owner)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	var lost []string
	for _, id := range ids {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

// releaseSQL hands the running invocations of owner ($1) back: pending, with one more
// attempt, the interrupted one recorded as released from its start to now ($2), with
// the log and error given for it.
const releaseSQL = `WITH x AS (
		SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[]) AS x(id, error, log, log_truncated)
	),
	u AS (
		UPDATE invocations i SET state = 'pending', lease_owner = '', lease_until = NULL,
			max_attempts = i.max_attempts + 1
		FROM x WHERE i.id = x.id AND i.state = 'running' AND i.lease_owner = $1
		RETURNING i.id, i.attempt, COALESCE(i.started_at, $2) AS started
	),
	att AS (
		INSERT INTO attempts (invocation_id, number, started_at, finished_at, duration_ms, outcome, error,
			log, log_truncated, owner)
		SELECT u.id, u.attempt, u.started, $2, (EXTRACT(EPOCH FROM $2 - u.started) * 1000)::float8, 'released',
			COALESCE(NULLIF(x.error, ''), 'released: the host shut down before the attempt finished'),
			x.log, x.log_truncated, $1
		FROM u JOIN x ON x.id = u.id
		` + upsertAttempt + `
	)
	SELECT count(*) FROM u`

// Release hands running invocations of owner back: they become pending, the
// interrupted attempt is recorded as released (from the invocation's started_at to now,
// with the given attempt's log and error), and, since the handler was interrupted and
// did not fail, the released attempt does not count against max_attempts.
func (s *Store) Release(ctx context.Context, owner string, attempts map[string]fnhost.Attempt, now time.Time) error {
	if len(attempts) == 0 {
		return nil
	}
	ids := make([]string, 0, len(attempts))
	for id := range attempts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	errs, logs, truncs := make([]string, len(ids)), make([]string, len(ids)), make([]bool, len(ids))
	for i, id := range ids {
		a := attempts[id]
		errs[i], logs[i], truncs[i] = a.Error, a.Log, a.LogTruncated
	}
	var n int64
	err := retry(ctx, func() error {
		return s.pool.QueryRow(ctx, releaseSQL, owner, now, ids, errs, logs, truncs).Scan(&n)
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if n > 0 {
		s.announce()
	}
	return nil
}

// rescueSQL returns the running invocations whose lease expired before $1 to pending
// and records their attempts as lost. Rows another transaction holds (a completion
// that arrived in time, another instance's rescue) are left to it.
const rescueSQL = `WITH old AS (
		SELECT id, attempt, COALESCE(started_at, $1) AS started, lease_owner,
			'lease expired: owner ' || lease_owner || ' stopped heartbeating' AS why
		FROM invocations
		WHERE state = 'running' AND lease_until < $1
		ORDER BY id
		FOR UPDATE SKIP LOCKED
	),
	u AS (
		UPDATE invocations i SET state = 'pending', error = old.why, lease_owner = '', lease_until = NULL
		FROM old WHERE i.id = old.id
		RETURNING i.id
	),
	att AS (
		INSERT INTO attempts (invocation_id, number, started_at, finished_at, duration_ms, outcome, error,
			log, log_truncated, owner)
		SELECT id, attempt, started, $1, (EXTRACT(EPOCH FROM $1 - started) * 1000)::float8, 'lost', why, '', false,
			lease_owner
		FROM old
		` + upsertAttempt + `
	)
	SELECT count(*) FROM u`

// Rescue returns running invocations whose lease expired before now to pending and
// records their attempt as lost.
func (s *Store) Rescue(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := retry(ctx, func() error { return s.pool.QueryRow(ctx, rescueSQL, now).Scan(&n) })
	if err != nil {
		return 0, fmt.Errorf("rescue: %w", err)
	}
	if n > 0 {
		s.announce()
	}
	return int(n), nil
}
