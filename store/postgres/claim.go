package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// A claim reads the ready rows of each function it asks for from invocations_claim,
// which is ordered by function, then claim order (priority desc, run_at, id), and locks
// the rows it takes with FOR UPDATE SKIP LOCKED: rows that a concurrent claim (of this
// instance or another) holds are passed over, not waited for, and a row that a claim
// committed meanwhile no longer qualifies when it is locked (PostgreSQL checks the row's
// latest version), so no row is claimed twice.
//
// A claim of one function is one index range, locked as it is read. A claim of several
// functions first reads the first Limit ready rows of each, without locking, and keeps
// the first Limit of them in claim order: that says how many rows to take from each
// function. It then locks that many rows of each function, skipping locked ones, so
// that it locks hardly more rows than it takes, and the backlog of a function it does
// not ask for costs it nothing. A claim of every function finds the functions that have
// ready rows in the same index, one probe each.

// claimReady is the condition of a ready row at $3 (now).
const claimReady = `state IN ('pending', 'scheduled') AND (state = 'pending' OR run_at <= $3)`

// claimUpdate claims the rows whose ids the CTE c holds: $1 owner, $2 lease, $3 now.
// The ids go through an array so that the plan looks them up by primary key whatever
// it guesses of their number.
var claimUpdate = `
	UPDATE invocations i SET state = 'running', attempt = i.attempt + 1, lease_owner = $1, lease_until = $2,
		started_at = $3, finished_at = NULL
	WHERE i.id = ANY(ARRAY(SELECT id FROM c))
	RETURNING ` + invColumns + `, event`

// claimOneSQL claims up to $4 ready rows of function $5.
var claimOneSQL = `WITH c AS (
		SELECT id FROM invocations
		WHERE function = $5 AND ` + claimReady + `
		ORDER BY priority DESC, run_at, id
		LIMIT $4
		FOR UPDATE SKIP LOCKED
	)` + claimUpdate

// claimTakeSQL is the part of a claim of several functions that follows the CTE f of
// the functions: it chooses how many rows to take from each, takes them, and claims
// them.
var claimTakeSQL = `,
	top AS (
		SELECT t.function FROM f CROSS JOIN LATERAL (
			SELECT function, priority, run_at, id FROM invocations
			WHERE function = f.function AND ` + claimReady + `
			ORDER BY priority DESC, run_at, id
			LIMIT $4
		) t
		ORDER BY t.priority DESC, t.run_at, t.id
		LIMIT $4
	),
	counts AS (SELECT function, count(*) AS n FROM top GROUP BY function),
	c AS (
		SELECT l.id FROM counts CROSS JOIN LATERAL (
			SELECT id FROM invocations
			WHERE function = counts.function AND ` + claimReady + `
			ORDER BY priority DESC, run_at, id
			LIMIT counts.n
			FOR UPDATE SKIP LOCKED
		) l
	)` + claimUpdate

// claimManySQL claims up to $4 ready rows of the functions $5.
var claimManySQL = `WITH f AS (SELECT DISTINCT unnest($5::text[]) AS function)` + claimTakeSQL

// claimAllSQL claims up to $4 ready rows of every function but those of $5. The CTE f
// finds the functions with ready rows by a loose scan of invocations_claim.
var claimAllSQL = `WITH RECURSIVE fs(function) AS (
		(SELECT function FROM invocations WHERE state IN ('pending', 'scheduled') ORDER BY function LIMIT 1)
		UNION ALL
		SELECT (SELECT function FROM invocations
			WHERE state IN ('pending', 'scheduled') AND function > fs.function ORDER BY function LIMIT 1)
		FROM fs WHERE fs.function IS NOT NULL
	),
	f AS (SELECT function FROM fs WHERE function IS NOT NULL AND function <> ALL($5::text[]))` + claimTakeSQL

// Claim moves up to req.Limit ready invocations to running under req.Owner, in one
// statement. Ready means pending, or scheduled with run_at <= req.Now. The result is in
// claim order: priority (highest first), then run_at, then id; it carries the events
// but not the attempts.
func (s *Store) Claim(ctx context.Context, req store.ClaimRequest) ([]*fnhost.Invocation, error) {
	fns, now, none, err := req.Normalize()
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if none {
		return nil, nil
	}
	var query string
	var arg any
	switch {
	case fns == nil:
		query, arg = claimAllSQL, append([]string{}, req.Exclude...)
	case len(fns) == 1:
		query, arg = claimOneSQL, fns[0]
	default:
		query, arg = claimManySQL, fns
	}
	var out []*fnhost.Invocation
	err = retry(ctx, func() error {
		out = out[:0]
		return s.claim(ctx, query, []any{req.Owner, req.LeaseUntil, now, req.Limit, arg}, func(rows pgx.Rows) error {
			for rows.Next() {
				inv, err := scanInvocation(rows, true)
				if err != nil {
					return err
				}
				out = append(out, inv)
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	store.SortClaimed(out)
	return out, nil
}

// claim runs a claim statement in a transaction of its own that plans it without
// sorts (enable_sort off), all in one round trip. Claim order is the order of
// invocations_claim, which the plan then reads in order from the first ready row on,
// whatever the statistics say: a queue's statistics are often stale (a table that
// filled since they were gathered looks empty), and a plan that sorts every ready row
// of a function to take the first few would cost more with each row of a backlog.
func (s *Store) claim(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL enable_sort = off`)
	b.Queue(query, args...).Query(scan)
	b.Queue(`COMMIT`)
	err = conn.SendBatch(ctx, b).Close()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(rctx, `ROLLBACK`)
	}
	return err
}
