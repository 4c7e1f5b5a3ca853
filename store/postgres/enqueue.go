package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost/store"
)

// Enqueue persists invocations atomically. An invocation whose id, or function and
// dedup key, are already stored, or whose receipt holds its version, is not inserted:
// its result holds the stored invocation's id and Duplicate. The continuations of a
// duplicate later in invs are not inserted either: their results hold their own ids and
// Duplicate. An invocation with a Completion is inserted in the state its completion
// leaves it in, and the rest of the completion is applied in the same transaction.
//
// Plain invocations (no dedup key, receipt, parent or completion) are one INSERT; so
// are invocations stored finished with nothing else about them (a synchronous call).
// The others are a transaction that reads what the call could collide with (ids, dedup
// keys, receipts), decides each invocation's fate in the call's order, and writes: an
// instance that wrote one of those keys meanwhile makes a write miss a row, and the
// transaction runs again, seeing it.
func (s *Store) Enqueue(ctx context.Context, invs []store.NewInvocation) ([]store.EnqueueResult, error) {
	if len(invs) == 0 {
		return nil, nil
	}
	rows, err := prepareNew(invs)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	var (
		res   []store.EnqueueResult
		ready bool
	)
	switch {
	case isPlain(rows):
		err = retry(ctx, func() (err error) {
			res, ready, err = s.insertPlain(ctx, s.pool, rows)
			return err
		})
	case isFinishedOnly(rows):
		err = retry(ctx, func() (err error) {
			res, ready, err = s.insertFinished(ctx, s.pool, rows)
			return err
		})
	default:
		err = s.inTx(ctx, func(tx pgx.Tx) (err error) {
			res, ready, err = s.insert(ctx, tx, rows)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if ready {
		s.announce()
	}
	return res, nil
}

// isFinishedOnly reports whether every row is stored finished, with no dedup key,
// receipt or parent, and spawns nothing: then a row is a duplicate only by its id, and
// its completion needs nothing another row of the call does.
func isFinishedOnly(rows []newRow) bool {
	for i := range rows {
		r := &rows[i]
		if r.done == nil || len(r.done.spawn) > 0 || r.receiptKey != "" || r.dedupKey != "" || r.parentID != "" {
			return false
		}
	}
	return true
}

// results turns the ids a statement inserted into the results of rows: the first row
// with an inserted id was stored, any other is a duplicate of its own id.
func results(rows []newRow, inserted map[string]bool) ([]store.EnqueueResult, bool) {
	res := make([]store.EnqueueResult, len(rows))
	ready := false
	for i := range rows {
		r := &rows[i]
		if inserted[r.id] {
			res[i] = store.EnqueueResult{ID: r.id}
			delete(inserted, r.id)
			ready = ready || r.ready()
		} else {
			res[i] = store.EnqueueResult{ID: r.id, Duplicate: true}
		}
	}
	return res, ready
}

// insertPlain inserts plain rows with one statement.
func (s *Store) insertPlain(ctx context.Context, q querier, rows []newRow) ([]store.EnqueueResult, bool, error) {
	var a rowArrays
	for i := range rows {
		a.add(&rows[i])
	}
	inserted, err := queryIDs(ctx, q, insertSQL, a.args()...)
	if err != nil {
		return nil, false, err
	}
	res, ready := results(rows, inserted)
	return res, ready, nil
}

// insertFinishedSQL inserts rows stored finished and applies the rest of their
// completions, in one statement.
var insertFinishedSQL = finishSQL(`
	ins AS (`+insertInto(17, "id, function")+`),`, `SELECT x.id, 1 AS attempt, NULL::timestamptz AS started_at, ins.function FROM x JOIN ins ON ins.id = x.id`)

// insertFinished inserts rows that isFinishedOnly accepts with one statement.
func (s *Store) insertFinished(ctx context.Context, q querier, rows []newRow) ([]store.EnqueueResult, bool, error) {
	var a rowArrays
	var c compArrays
	seen := make(map[string]bool, len(rows))
	for i := range rows {
		a.add(&rows[i])
		// A second row with the same id is a duplicate: its completion is not applied.
		if !seen[rows[i].id] {
			seen[rows[i].id] = true
			c.add(rows[i].done)
		}
	}
	applied, ready, err := s.finish(ctx, q, insertFinishedSQL, &c, a.args()...)
	if err != nil {
		return nil, false, err
	}
	res, r := results(rows, applied)
	return res, ready || r, nil
}

// queryIDs runs a query that returns one text column and returns its values.
func queryIDs(ctx context.Context, q querier, query string, args ...any) (map[string]bool, error) {
	rs, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := make(map[string]bool)
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rs.Err()
}

type fnKey struct{ function, key string }

type receipt struct {
	version, id string
	created     time.Time
	// dbVersion and dbID are what the stored receipt held when the call read it;
	// dbID is empty when there was none.
	dbVersion string
	dbID      string
	touched   bool
}

const (
	existingIDsSQL  = `SELECT id FROM invocations WHERE id = ANY($1)`
	dedupHoldersSQL = `SELECT i.function, i.dedup_key, i.id
		FROM unnest($1::text[], $2::text[]) AS k(function, dedup_key)
		JOIN invocations i ON i.function = k.function AND i.dedup_key = k.dedup_key
		WHERE i.dedup_key <> ''`
	receiptsOfSQL = `SELECT r.function, r.key, r.version, r.invocation_id
		FROM unnest($1::text[], $2::text[]) AS k(function, key)
		JOIN receipts r ON r.function = k.function AND r.key = k.key`
	// insertReceiptsSQL stores new receipts; one that another instance stored meanwhile
	// is not written, and the caller runs again.
	insertReceiptsSQL = `INSERT INTO receipts (function, key, version, invocation_id, created_at, updated_at)
		SELECT x.function, x.key, x.version, x.invocation_id, x.at, x.at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
			AS x(function, key, version, invocation_id, at)
		ON CONFLICT (function, key) DO NOTHING
		RETURNING key`
	// updateReceiptsSQL moves receipts that still hold what the call read; one that
	// another instance moved or forgot meanwhile is not written, and the caller runs
	// again.
	updateReceiptsSQL = `UPDATE receipts r SET version = x.version, invocation_id = x.invocation_id, updated_at = x.at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[])
			AS x(function, key, version, invocation_id, at, old_version, old_id)
		WHERE r.function = x.function AND r.key = x.key AND r.version = x.old_version AND r.invocation_id = x.old_id
		RETURNING r.key`
)

// insert stores rows inside the transaction q, as Enqueue describes, and returns what
// became of each and whether that made work ready.
func (s *Store) insert(ctx context.Context, q querier, rows []newRow) ([]store.EnqueueResult, bool, error) {
	if isPlain(rows) {
		return s.insertPlain(ctx, q, rows)
	}

	// What the rows could collide with, as stored now: one round trip.
	ids := make([]string, len(rows))
	var dfn, dkey, rfn, rkey []string
	for i := range rows {
		r := &rows[i]
		ids[i] = r.id
		if r.dedupKey != "" {
			dfn, dkey = append(dfn, r.function), append(dkey, r.dedupKey)
		}
		if r.receiptKey != "" {
			rfn, rkey = append(rfn, r.function), append(rkey, r.receiptKey)
		}
	}
	taken := make(map[string]bool)
	dedup := make(map[fnKey]string)
	receipts := make(map[fnKey]*receipt)
	b := &pgx.Batch{}
	b.Queue(existingIDsSQL, ids).Query(func(rs pgx.Rows) error {
		var id string
		_, err := pgx.ForEachRow(rs, []any{&id}, func() error { taken[id] = true; return nil })
		return err
	})
	if len(dfn) > 0 {
		b.Queue(dedupHoldersSQL, dfn, dkey).Query(func(rs pgx.Rows) error {
			var fn, key, id string
			_, err := pgx.ForEachRow(rs, []any{&fn, &key, &id}, func() error { dedup[fnKey{fn, key}] = id; return nil })
			return err
		})
	}
	if len(rfn) > 0 {
		b.Queue(receiptsOfSQL, rfn, rkey).Query(func(rs pgx.Rows) error {
			var fn, key, version, id string
			_, err := pgx.ForEachRow(rs, []any{&fn, &key, &version, &id}, func() error {
				receipts[fnKey{fn, key}] = &receipt{version: version, id: id, dbVersion: version, dbID: id}
				return nil
			})
			return err
		})
	}
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, false, err
	}

	// The fate of each row, in the call's order.
	res := make([]store.EnqueueResult, len(rows))
	dups := make(map[string]bool)
	var ins rowArrays
	var stored []*newRow
	ready := false
	for i := range rows {
		r := &rows[i]
		if r.parentID != "" && dups[r.parentID] {
			res[i] = store.EnqueueResult{ID: r.id, Duplicate: true}
			dups[r.id] = true
			continue
		}
		rk := fnKey{r.function, r.receiptKey}
		if r.receiptKey != "" {
			if rc := receipts[rk]; rc != nil && rc.version == r.receiptVersion {
				res[i] = store.EnqueueResult{ID: rc.id, Duplicate: true}
				dups[r.id] = true
				continue
			}
		}
		dk := fnKey{r.function, r.dedupKey}
		holder, dedupTaken := "", false
		if r.dedupKey != "" {
			holder, dedupTaken = dedup[dk]
		}
		if taken[r.id] || dedupTaken {
			id := r.id
			if dedupTaken {
				id = holder
			}
			res[i] = store.EnqueueResult{ID: id, Duplicate: true}
			dups[r.id] = true
			continue
		}
		taken[r.id] = true
		if r.dedupKey != "" {
			dedup[dk] = r.id
		}
		if r.receiptKey != "" {
			rc := receipts[rk]
			if rc == nil {
				rc = &receipt{}
				receipts[rk] = rc
			}
			rc.version, rc.id, rc.created, rc.touched = r.receiptVersion, r.id, r.created, true
		}
		res[i] = store.EnqueueResult{ID: r.id}
		ins.add(r)
		stored = append(stored, r)
		ready = ready || r.ready()
	}
	if len(stored) == 0 {
		return res, false, nil
	}

	// The writes, one round trip; a row or receipt that another instance wrote
	// meanwhile makes a count fall short.
	var newR, movedR receiptArrays
	keys := make([]fnKey, 0, len(receipts))
	for k, rc := range receipts {
		if rc.touched {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b fnKey) int {
		return cmp.Or(cmp.Compare(a.function, b.function), cmp.Compare(a.key, b.key))
	})
	for _, k := range keys {
		rc := receipts[k]
		if rc.dbID != "" {
			movedR.add(k, rc)
		} else {
			newR.add(k, rc)
		}
	}
	b = &pgx.Batch{}
	var missed []string
	expect := func(what string, want int) func(pgx.Rows) error {
		return func(rs pgx.Rows) error {
			n := 0
			for rs.Next() {
				n++
			}
			if err := rs.Err(); err != nil {
				return err
			}
			if n != want {
				missed = append(missed, what+" "+strconv.Itoa(want-n))
			}
			return nil
		}
	}
	b.Queue(insertSQL, ins.args()...).Query(expect("invocations", len(stored)))
	if len(newR.function) > 0 {
		b.Queue(insertReceiptsSQL, newR.function, newR.key, newR.version, newR.id, newR.at).
			Query(expect("new receipts", len(newR.function)))
	}
	if len(movedR.function) > 0 {
		b.Queue(updateReceiptsSQL, movedR.function, movedR.key, movedR.version, movedR.id, movedR.at,
			movedR.oldVersion, movedR.oldID).Query(expect("receipts", len(movedR.function)))
	}
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, false, err
	}
	if len(missed) > 0 {
		return nil, false, fmt.Errorf("%w (%v)", errRetry, missed)
	}

	// The completions of the rows stored finished, then what they spawn.
	var c compArrays
	for _, r := range stored {
		if r.done != nil {
			c.add(r.done)
		}
	}
	if len(c.id) > 0 {
		applied, r, err := s.finish(ctx, q, finishInsertedSQL, &c)
		if err != nil {
			return nil, false, err
		}
		ready = ready || r
		var spawn []newRow
		for _, row := range stored {
			if row.done != nil && applied[row.id] {
				spawn = append(spawn, row.done.spawn...)
			}
		}
		if len(spawn) > 0 {
			_, r, err := s.insert(ctx, q, spawn)
			if err != nil {
				return nil, false, err
			}
			ready = ready || r
		}
	}
	return res, ready, nil
}

// receiptArrays are receipts to write, as arrays.
type receiptArrays struct {
	function, key, version, id, oldVersion, oldID []string
	at                                            []time.Time
}

func (a *receiptArrays) add(k fnKey, rc *receipt) {
	a.function = append(a.function, k.function)
	a.key = append(a.key, k.key)
	a.version = append(a.version, rc.version)
	a.id = append(a.id, rc.id)
	a.at = append(a.at, rc.created)
	a.oldVersion = append(a.oldVersion, rc.dbVersion)
	a.oldID = append(a.oldID, rc.dbID)
}
