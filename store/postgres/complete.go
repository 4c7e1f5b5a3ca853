package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// completion is a store.Completion checked and turned into column values.
type completion struct {
	c     *store.Completion
	id    string
	owner string
	state fnhost.State
	// runAt is set for a retry, finishedAt for an end.
	runAt, finishedAt pgtype.Timestamptz
	// finished is when the attempt finished: the run_at of the woken children and the
	// finish time of the cancelled ones.
	finished time.Time
	output   []byte
	errStr   string
	// The attempt to record; its number and, when aStarted is zero, its start come from
	// the invocation.
	aStarted  time.Time
	aDuration float64
	aOutcome  fnhost.Outcome
	aError    string
	aLog      string
	aTrunc    bool
	aOwner    string
	spawn     []newRow
	dup       bool // a second completion of the same id in one call
}

// prepareCompletion checks one completion and computes its column values. A finish
// time it lacks is *now, which it sets on first use.
func prepareCompletion(c *store.Completion, now *time.Time) (completion, error) {
	state := c.State
	switch state {
	case fnhost.StateSucceeded, fnhost.StateFailed, fnhost.StateCancelled, fnhost.StateScheduled, fnhost.StatePending:
	default:
		return completion{}, fmt.Errorf("completion %s: cannot complete to state %q", c.ID, state)
	}
	if len(c.Output) > 0 && !json.Valid(c.Output) {
		return completion{}, fmt.Errorf("completion %s: output is not valid JSON", c.ID)
	}
	if len(c.ThenEvent) > 0 && !json.Valid(c.ThenEvent) {
		return completion{}, fmt.Errorf("completion %s: then event is not valid JSON", c.ID)
	}
	finished := c.Attempt.FinishedAt
	if finished.IsZero() {
		if now.IsZero() {
			*now = time.Now()
		}
		finished = *now
	}
	comp := completion{c: c, id: c.ID, owner: c.Owner, finished: finished, output: nullBytes(c.Output)}
	if state == fnhost.StateScheduled || state == fnhost.StatePending {
		at := c.RunAt
		if at.IsZero() {
			at = finished
		}
		if !at.After(finished) {
			state = fnhost.StatePending
		}
		comp.runAt = ts(at)
	} else {
		comp.finishedAt = ts(finished)
	}
	comp.state = state
	comp.errStr = c.Error
	if comp.errStr == "" && state != fnhost.StateSucceeded {
		comp.errStr = c.Attempt.Error
	}
	a := c.Attempt
	comp.aStarted, comp.aDuration, comp.aError, comp.aLog, comp.aTrunc = a.StartedAt, a.DurationMS, a.Error, a.Log, a.LogTruncated
	comp.aOutcome = a.Outcome
	if comp.aOutcome == "" {
		switch state {
		case fnhost.StateSucceeded:
			comp.aOutcome = fnhost.OutcomeSucceeded
		case fnhost.StateCancelled:
			comp.aOutcome = fnhost.OutcomeCancelled
		default:
			comp.aOutcome = fnhost.OutcomeFailed
		}
	}
	comp.aOwner = a.Owner
	if comp.aOwner == "" {
		comp.aOwner = c.Owner
	}
	spawn, err := prepareNew(c.Spawn)
	if err != nil {
		return completion{}, fmt.Errorf("completion %s: spawn: %w", c.ID, err)
	}
	for i := range spawn {
		if spawn[i].done != nil {
			return completion{}, fmt.Errorf("completion %s: spawn %d: a spawned invocation cannot carry a completion", c.ID, i)
		}
	}
	comp.spawn = spawn
	return comp, nil
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
	hasSpawn          bool
}

func (a *compArrays) add(c *completion) {
	a.id = append(a.id, c.id)
	a.state = append(a.state, string(c.state))
	a.runAt = append(a.runAt, c.runAt)
	a.finishedAt = append(a.finishedAt, c.finishedAt)
	a.output = append(a.output, c.output)
	a.errStr = append(a.errStr, c.errStr)
	a.owner = append(a.owner, c.owner)
	a.finished = append(a.finished, c.finished)
	a.thenEvent = append(a.thenEvent, nullBytes(c.c.ThenEvent))
	a.aStarted = append(a.aStarted, ts(c.aStarted))
	a.aDuration = append(a.aDuration, c.aDuration)
	a.aOutcome = append(a.aOutcome, string(c.aOutcome))
	a.aError = append(a.aError, c.aError)
	a.aLog = append(a.aLog, c.aLog)
	a.aTrunc = append(a.aTrunc, c.aTrunc)
	a.aOwner = append(a.aOwner, c.aOwner)
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

// finishSQL completes the invocations whose CTE u (id, attempt, started_at, function)
// says they are to be completed, each as its row of x says: it records their attempts
// and adds them to the throughput buckets, wakes the awaiting `then` children of the
// successes (with their ThenEvent) and cancels every other awaiting descendant of the
// ended ones. It returns the ids of u, their
// attempt numbers and how many children woke. pre holds CTEs that u reads, each
// followed by a comma.
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
		ON CONFLICT (invocation_id, number) DO UPDATE SET started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, outcome = EXCLUDED.outcome,
			error = EXCLUDED.error, log = EXCLUDED.log, log_truncated = EXCLUDED.log_truncated,
			owner = EXCLUDED.owner
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
	SELECT d.id, d.attempt, (SELECT count(*) FROM wake) FROM d`
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
		if c.ID == "" || c.Owner == "" {
			return nil, fmt.Errorf("complete: completion %d: id and owner are required", i)
		}
		comp, err := prepareCompletion(c, &now)
		if err != nil {
			return nil, fmt.Errorf("complete: %w", err)
		}
		comp.dup = seen[c.ID]
		seen[c.ID] = true
		comps[i] = comp
	}
	// In id order, so that concurrent calls lock their rows in the same order.
	order := make([]*completion, 0, len(comps))
	for i := range comps {
		if !comps[i].dup {
			order = append(order, &comps[i])
			if len(comps[i].spawn) > 0 {
				arr.hasSpawn = true
			}
		}
	}
	slices.SortFunc(order, func(a, b *completion) int { return strings.Compare(a.id, b.id) })
	for _, c := range order {
		arr.add(c)
	}

	var applied map[string]bool
	var ready bool
	run := func(q querier) error {
		var err error
		applied, ready, err = s.finish(ctx, q, completeSQL, &arr)
		if err != nil || !arr.hasSpawn {
			return err
		}
		var spawn []newRow
		for i := range comps {
			if applied[comps[i].id] && !comps[i].dup {
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
	if arr.hasSpawn {
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
		if !applied[comps[i].id] || comps[i].dup {
			dropped = append(dropped, comps[i].id)
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
		var attempt int32
		if err := rows.Scan(&id, &attempt, &woke); err != nil {
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
	held := make(map[string]bool, len(ids))
	err := retry(ctx, func() error {
		clear(held)
		rows, err := s.pool.Query(ctx, `UPDATE invocations SET lease_until = $1
			WHERE id = ANY($2) AND state = 'running' AND lease_owner = $3
			RETURNING id`, leaseUntil, sortedCopy(ids), owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			held[id] = true
		}
		return rows.Err()
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
		ON CONFLICT (invocation_id, number) DO UPDATE SET started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, outcome = EXCLUDED.outcome,
			error = EXCLUDED.error, log = EXCLUDED.log, log_truncated = EXCLUDED.log_truncated,
			owner = EXCLUDED.owner
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
		SELECT id, attempt, COALESCE(started_at, $1) AS started, lease_owner
		FROM invocations
		WHERE state = 'running' AND lease_until < $1
		ORDER BY id
		FOR UPDATE SKIP LOCKED
	),
	u AS (
		UPDATE invocations i SET state = 'pending',
			error = 'lease expired: owner ' || old.lease_owner || ' stopped heartbeating',
			lease_owner = '', lease_until = NULL
		FROM old WHERE i.id = old.id
		RETURNING i.id
	),
	att AS (
		INSERT INTO attempts (invocation_id, number, started_at, finished_at, duration_ms, outcome, error,
			log, log_truncated, owner)
		SELECT id, attempt, started, $1, (EXTRACT(EPOCH FROM $1 - started) * 1000)::float8, 'lost',
			'lease expired: owner ' || lease_owner || ' stopped heartbeating', '', false, lease_owner
		FROM old
		ON CONFLICT (invocation_id, number) DO UPDATE SET started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, outcome = EXCLUDED.outcome,
			error = EXCLUDED.error, log = EXCLUDED.log, log_truncated = EXCLUDED.log_truncated,
			owner = EXCLUDED.owner
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
