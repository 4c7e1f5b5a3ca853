package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

var (
	insertSQL = sqlCache{build: func(n int) string {
		return `INSERT INTO invocations (` + insertColumns + `) VALUES ` + valuesSQL(n, insertWidth) +
			` ON CONFLICT DO NOTHING`
	}}
	insertFinishedSQL = sqlCache{build: func(n int) string {
		return `INSERT INTO invocations (` + insertColumns + finishedColumns + `) VALUES ` + valuesSQL(n, finishedWidth) +
			` ON CONFLICT DO NOTHING`
	}}
	completeSQL = sqlCache{build: func(n int) string {
		return `UPDATE invocations SET state = v.column2, run_at = COALESCE(v.column3, invocations.run_at),
			finished_at = v.column4, output = COALESCE(v.column5, invocations.output), error = v.column6,
			lease_owner = '', lease_until = NULL
			FROM (VALUES ` + valuesSQL(n, completeWidth) + `) AS v
			WHERE invocations.id = v.column1 AND +invocations.state = 'running' AND invocations.lease_owner = v.column7
			RETURNING invocations.id, invocations.attempt, invocations.started_at, invocations.function`
	}}
	attemptSQL = sqlCache{build: func(n int) string {
		return `INSERT OR REPLACE INTO attempts (invocation_id, ` + attemptColumns + `) VALUES ` + valuesSQL(n, attemptWidth)
	}}
)

const (
	completeWidth = 7
	attemptWidth  = 10
	// rowChunk is how many completions or attempts one statement writes.
	rowChunk = 64
)

// Enqueue persists invocations in one transaction. An invocation whose function and
// dedup key, or whose id, are already stored, or whose receipt holds its version, is not
// inserted again: its result holds the stored invocation's id and Duplicate. The
// continuations of a duplicate later in invs are not inserted either: their results
// hold their own ids and Duplicate.
//
// An invocation with a Completion is inserted in the state its completion leaves it
// in; once every row is inserted, the rest of the completions of those stored (not
// duplicates) is applied as Complete applies it, in the same transaction.
func (s *Store) Enqueue(ctx context.Context, invs []store.NewInvocation) ([]store.EnqueueResult, error) {
	if len(invs) == 0 {
		return nil, nil
	}
	rows, err := prepareNew(invs)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	weight, finished := len(rows), false
	for i := range rows {
		if rows[i].receiptKey != "" {
			weight++
		}
		if rows[i].done != nil {
			weight += rows[i].done.weight()
			finished = true
		}
	}
	res := make([]store.EnqueueResult, len(rows))
	r := &request{ctx: ctx, rows: weight, run: func(w *writer) error {
		if err := w.insert(rows, res); err != nil {
			return err
		}
		if finished {
			return w.finishInserted(rows, res)
		}
		return nil
	}}
	switch {
	case isPlain(invs):
		r.plain, r.res = rows, res
	case isSimpleFinished(invs):
		r.plain, r.res, r.finished = rows, res, true
	}
	if err := s.send(ctx, r); err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	return res, nil
}

// isPlain reports whether invs are all plain new invocations: no receipt, dedup key,
// completion, owner or parent. Only a conflicting id can make such a row not insert,
// so the writer may insert them in one statement with those of other plain Enqueues.
func isPlain(invs []store.NewInvocation) bool {
	for i := range invs {
		n := &invs[i]
		if n.ReceiptKey != "" || n.DedupKey != "" || n.Completion != nil || n.Owner != "" || n.ParentID != "" {
			return false
		}
	}
	return true
}

// isSimpleFinished reports whether invs is one invocation stored finished with nothing
// around it: no receipt, dedup key or parent, and a completion that spawns nothing and
// carries no event for children. Only a conflicting id, or children already awaiting
// it, keep the rest of its completion from being its attempt row, so the writer may
// store it together with the simple finished Enqueues next to it in the batch.
func isSimpleFinished(invs []store.NewInvocation) bool {
	if len(invs) != 1 {
		return false
	}
	n := &invs[0]
	return n.Owner != "" && n.Completion != nil && n.ReceiptKey == "" && n.DedupKey == "" &&
		n.ParentID == "" && len(n.Completion.Spawn) == 0 && len(n.Completion.ThenEvent) == 0
}

// insert writes new invocations, insertChunk per statement. res, when not nil, receives
// what became of each. A chunk in which some row conflicts (a stored dedup key or id) is
// rolled back and written again row by row, to tell which rows are duplicates. A chunk
// that holds receipts, or a continuation of a duplicate found earlier in rows, is
// written row by row from the start.
func (w *writer) insert(rows []newRow, res []store.EnqueueResult) error {
	// dups holds the ids of the rows found duplicate, whose continuations are skipped.
	var dups map[string]bool
	args := make([]any, 0, min(len(rows), insertChunk)*insertWidth)
	for off := 0; off < len(rows); off += insertChunk {
		chunk := rows[off:min(off+insertChunk, len(rows))]
		if rowByRow(chunk, dups) {
			if dups == nil {
				dups = make(map[string]bool)
			}
			if err := w.insertEach(chunk, res, off, dups); err != nil {
				return err
			}
			continue
		}
		query, width := insertSQL.get(len(chunk)), insertWidth
		for i := range chunk {
			if chunk[i].done != nil {
				query, width = insertFinishedSQL.get(len(chunk)), finishedWidth
				break
			}
		}
		args = args[:0]
		for i := range chunk {
			args = append(args, chunk[i].args[:width]...)
		}
		if _, err := w.exec(`SAVEPOINT chunk`); err != nil {
			return err
		}
		r, err := w.exec(query, args...)
		var n int64
		if err == nil {
			n, err = r.RowsAffected()
		}
		if err == nil && n != int64(len(chunk)) {
			_, err = w.exec(`ROLLBACK TO chunk`)
			if err == nil {
				if dups == nil {
					dups = make(map[string]bool)
				}
				err = w.insertEach(chunk, res, off, dups)
			}
		} else if err == nil && res != nil {
			for i := range chunk {
				res[off+i] = store.EnqueueResult{ID: chunk[i].id}
			}
		}
		if err != nil {
			return err
		}
		if _, err := w.exec(`RELEASE chunk`); err != nil {
			return err
		}
	}
	return nil
}

// finishInserted applies the rest of the completions of the rows stored finished that
// insert stored (the duplicates are left out): each one's invocation holds attempt 1,
// started at its creation.
func (w *writer) finishInserted(rows []newRow, res []store.EnqueueResult) error {
	var comps []completion
	applied := make(map[string]claimed)
	for i := range rows {
		if rows[i].done == nil || res[i].Duplicate {
			continue
		}
		comps = append(comps, *rows[i].done)
		applied[rows[i].id] = claimed{attempt: 1, started: sql.NullInt64{Int64: rows[i].created, Valid: true}, function: rows[i].function}
	}
	if len(comps) == 0 {
		return nil
	}
	_, err := w.finish(comps, applied)
	return err
}

// rowByRow reports whether chunk must be written row by row: it holds a receipt, or a
// continuation of one of dups.
func rowByRow(chunk []newRow, dups map[string]bool) bool {
	for i := range chunk {
		if chunk[i].receiptKey != "" || (chunk[i].parentID != "" && dups[chunk[i].parentID]) {
			return true
		}
	}
	return false
}

// insertEach writes rows one by one. A row that is a duplicate gets the stored
// invocation's id and Duplicate, and its id joins dups; a row whose parent is in dups
// is skipped (its parent was not stored by this call) and joins dups too.
func (w *writer) insertEach(rows []newRow, res []store.EnqueueResult, off int, dups map[string]bool) error {
	for i := range rows {
		row := &rows[i]
		r := store.EnqueueResult{ID: row.id, Duplicate: true}
		if row.parentID == "" || !dups[row.parentID] {
			var err error
			if r, err = w.insertOne(row); err != nil {
				return err
			}
		}
		if r.Duplicate {
			dups[row.id] = true
		}
		if res != nil {
			res[off+i] = r
		}
	}
	return nil
}

// insertOne writes one row and, when it has a receipt, the receipt. A receipt that holds
// the row's version makes it a duplicate of the receipt's invocation; a row that
// conflicts (a stored dedup key or id) leaves the receipt alone.
func (w *writer) insertOne(row *newRow) (store.EnqueueResult, error) {
	if row.receiptKey != "" {
		var version, id string
		err := w.queryRow(`SELECT version, invocation_id FROM receipts WHERE function = ?1 AND key = ?2`,
			row.function, row.receiptKey).Scan(&version, &id)
		if err == nil && version == row.receiptVersion {
			return store.EnqueueResult{ID: id, Duplicate: true}, nil
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return store.EnqueueResult{}, err
		}
	}
	query, width := insertSQL.get(1), insertWidth
	if row.done != nil {
		query, width = insertFinishedSQL.get(1), finishedWidth
	}
	r, err := w.exec(query, row.args[:width]...)
	if err != nil {
		return store.EnqueueResult{}, err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return store.EnqueueResult{}, err
	}
	if n == 0 {
		id := row.id
		if row.dedupKey != "" {
			err := w.queryRow(`SELECT id FROM invocations WHERE function = ? AND dedup_key = ?`, row.function, row.dedupKey).Scan(&id)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return store.EnqueueResult{}, err
			}
		}
		return store.EnqueueResult{ID: id, Duplicate: true}, nil
	}
	if row.receiptKey != "" {
		if _, err := w.exec(`INSERT INTO receipts (function, key, version, invocation_id, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?5)
			ON CONFLICT (function, key) DO UPDATE SET version = excluded.version,
				invocation_id = excluded.invocation_id, updated_at = excluded.updated_at`,
			row.function, row.receiptKey, row.receiptVersion, row.id, row.created); err != nil {
			return store.EnqueueResult{}, fmt.Errorf("receipt: %w", err)
		}
	}
	return store.EnqueueResult{ID: row.id}, nil
}

func (w *writer) queryRow(query string, args ...any) *sql.Row {
	st, err := w.stmt(query)
	if err != nil {
		// A statement that does not prepare is a bug; report it through the row.
		return w.conn.QueryRowContext(context.Background(), query, args...)
	}
	return st.QueryRow(args...)
}

// Heartbeat extends the lease of the invocations still running under owner and returns
// the ids it no longer holds.
func (s *Store) Heartbeat(ctx context.Context, owner string, ids []string, leaseUntil time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, _ := json.Marshal(ids)
	held := make(map[string]bool, len(ids))
	err := s.do(ctx, len(ids), func(w *writer) error {
		clear(held)
		rs, err := w.query(`UPDATE invocations SET lease_until = ?1
			WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'running' AND lease_owner = ?3
			RETURNING id`, micros(leaseUntil), string(list), owner)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				return err
			}
			held[id] = true
		}
		return rs.Err()
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

// completion is a store.Completion checked and turned into column values.
type completion struct {
	c *store.Completion
	store.Done
	args  [completeWidth]any
	spawn []newRow
	dup   bool // a second completion of the same id in one call
}

func prepareCompletions(cs []store.Completion) ([]completion, int, error) {
	out := make([]completion, len(cs))
	seen := make(map[string]bool, len(cs))
	rows := 0
	var now time.Time
	for i := range cs {
		c := &cs[i]
		comp, err := prepareCompletion(c, &now)
		if err != nil {
			return nil, 0, err
		}
		comp.dup = seen[c.ID]
		out[i] = comp
		seen[c.ID] = true
		rows += comp.weight()
	}
	return out, rows, nil
}

// weight is the rows applying the completion writes, less the invocation's own.
func (c *completion) weight() int { return 2 + len(c.spawn) }

// prepareCompletion checks one completion and computes its column values. A finish
// time it lacks is *now, which it sets on first use.
func prepareCompletion(c *store.Completion, now *time.Time) (completion, error) {
	d, err := store.NormalizeCompletion(c, now)
	if err != nil {
		return completion{}, err
	}
	var runAt, finishedAt any
	if d.RunAt.IsZero() {
		finishedAt = micros(d.Finished)
	} else {
		runAt = micros(d.RunAt)
	}
	spawn, err := prepareNew(c.Spawn)
	if err != nil {
		return completion{}, fmt.Errorf("completion %s: spawn: %w", c.ID, err)
	}
	return completion{
		c:     c,
		Done:  d,
		args:  [completeWidth]any{c.ID, string(d.State), runAt, finishedAt, nullBytes(c.Output), nullString(d.Error), c.Owner},
		spawn: spawn,
	}, nil
}

// Complete records finished attempts: the invocation's next state, its attempt row, the
// wake-up or cancellation of its awaiting children, and the invocations it spawns, all
// in one transaction. Completions of invocations no longer running under their owner
// are dropped and their ids returned.
func (s *Store) Complete(ctx context.Context, cs []store.Completion) ([]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	comps, rows, err := prepareCompletions(cs)
	if err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	var dropped []string
	err = s.do(ctx, rows, func(w *writer) error {
		var err error
		dropped, err = w.complete(comps)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	return dropped, nil
}

type claimed struct {
	attempt  int
	started  sql.NullInt64
	function string
}

func (w *writer) complete(comps []completion) ([]string, error) {
	applied := make(map[string]claimed, len(comps))
	args := make([]any, 0, min(len(comps), rowChunk)*completeWidth)
	var batch []*completion
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		args = args[:0]
		for _, c := range batch {
			args = append(args, c.args[:]...)
		}
		rs, err := w.query(completeSQL.get(len(batch)), args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var id string
			var cl claimed
			if err := rs.Scan(&id, &cl.attempt, &cl.started, &cl.function); err != nil {
				return err
			}
			applied[id] = cl
		}
		batch = batch[:0]
		return rs.Err()
	}
	for i := range comps {
		if comps[i].dup {
			continue
		}
		batch = append(batch, &comps[i])
		if len(batch) == rowChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return w.finish(comps, applied)
}

// finish applies the rest of the completions whose invocation is in applied, with the
// attempt number and start time it holds: the attempt rows, the wake-up or cancellation
// of their awaiting children, the invocations they spawn. It returns the ids of the
// others, dropped.
func (w *writer) finish(comps []completion, applied map[string]claimed) ([]string, error) {
	var dropped []string
	var parents []string
	var tally throughput
	args := make([]any, 0, min(len(comps), rowChunk)*attemptWidth)
	n := 0
	for i := range comps {
		c := &comps[i]
		cl, ok := applied[c.c.ID]
		if !ok || c.dup {
			dropped = append(dropped, c.c.ID)
			continue
		}
		tally.add(cl.function, c)
		args = c.appendAttempt(args, cl)
		n++
		if n == rowChunk {
			if _, err := w.exec(attemptSQL.get(n), args...); err != nil {
				return nil, err
			}
			args, n = args[:0], 0
		}
		if c.State.Terminal() {
			parents = append(parents, c.c.ID)
		}
	}
	if n > 0 {
		if _, err := w.exec(attemptSQL.get(n), args...); err != nil {
			return nil, err
		}
	}
	if err := w.addThroughput(tally); err != nil {
		return nil, err
	}

	if len(parents) > 0 {
		waiting, err := w.awaitingParents(parents)
		if err != nil {
			return nil, err
		}
		for i := range comps {
			c := &comps[i]
			if !waiting[c.c.ID] || c.dup {
				continue
			}
			if c.State == fnhost.StateSucceeded {
				if _, err := w.exec(`UPDATE invocations SET state = 'pending', run_at = ?1, event = COALESCE(?2, event)
					WHERE parent_id = ?3 AND state = 'awaiting' AND continuation = 'then'`,
					micros(c.Finished), nullBytes(c.c.ThenEvent), c.c.ID); err != nil {
					return nil, fmt.Errorf("wake continuations of %s: %w", c.c.ID, err)
				}
			}
			if err := w.cancelAwaiting(c.c.ID, c.Finished); err != nil {
				return nil, err
			}
		}
	}

	for i := range comps {
		c := &comps[i]
		if _, ok := applied[c.c.ID]; !ok || c.dup || len(c.spawn) == 0 {
			continue
		}
		if err := w.insert(c.spawn, nil); err != nil {
			return nil, fmt.Errorf("spawn from %s: %w", c.c.ID, err)
		}
	}
	return dropped, nil
}

// appendAttempt appends to args the attemptWidth values of the attempt row of c, whose
// invocation holds the attempt number and start time of cl.
func (c *completion) appendAttempt(args []any, cl claimed) []any {
	a := c.c.Attempt
	started := a.StartedAt
	if started.IsZero() {
		started = c.Finished
		if cl.started.Valid {
			started = fromMicros(cl.started.Int64)
		}
	}
	dur := a.DurationMS
	if dur == 0 {
		dur = float64(c.Finished.Sub(started).Microseconds()) / 1000
	}
	return append(args, c.c.ID, cl.attempt, micros(started), micros(c.Finished), dur,
		string(c.Outcome), a.Error, a.Log, a.LogTruncated, c.AttemptOwner)
}

// awaitingParents returns which of ids have children in state awaiting.
func (w *writer) awaitingParents(ids []string) (map[string]bool, error) {
	list, _ := json.Marshal(ids)
	rs, err := w.query(`SELECT DISTINCT parent_id FROM invocations
		WHERE parent_id IN (SELECT value FROM json_each(?1)) AND +state = 'awaiting'`, string(list))
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := map[string]bool{}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rs.Err()
}

// cancelAwaiting cancels the awaiting children of parent, and theirs, recursively.
func (w *writer) cancelAwaiting(parent string, now time.Time) error {
	_, err := w.exec(`WITH RECURSIVE tree(id) AS (
			SELECT id FROM invocations WHERE parent_id = ?1 AND state = 'awaiting'
			UNION
			SELECT i.id FROM invocations i JOIN tree t ON i.parent_id = t.id WHERE i.state = 'awaiting'
		)
		UPDATE invocations SET state = 'cancelled', finished_at = ?2
		WHERE id IN (SELECT id FROM tree)`, parent, micros(now))
	if err != nil {
		return fmt.Errorf("cancel continuations of %s: %w", parent, err)
	}
	return nil
}

// Release hands running invocations of owner back: they become pending, the
// interrupted attempt is recorded as released (from the invocation's started_at to now,
// with the given attempt's log and error), and, since the handler was interrupted and
// did not fail, the released attempt does not count against max_attempts.
func (s *Store) Release(ctx context.Context, owner string, attempts map[string]fnhost.Attempt, now time.Time) error {
	if len(attempts) == 0 {
		return nil
	}
	err := s.do(ctx, len(attempts), func(w *writer) error {
		for id, a := range attempts {
			var cl claimed
			err := w.queryRow(`UPDATE invocations SET state = 'pending', lease_owner = '', lease_until = NULL,
					max_attempts = max_attempts + 1
				WHERE id = ?1 AND state = 'running' AND lease_owner = ?2
				RETURNING attempt, started_at`, id, owner).Scan(&cl.attempt, &cl.started)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			started := now
			if cl.started.Valid {
				started = fromMicros(cl.started.Int64)
			}
			msg := a.Error
			if msg == "" {
				msg = "released: the host shut down before the attempt finished"
			}
			if _, err := w.exec(attemptSQL.get(1), id, cl.attempt, micros(started), micros(now),
				float64(now.Sub(started).Microseconds())/1000, string(fnhost.OutcomeReleased), msg,
				a.Log, a.LogTruncated, owner); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// Rescue returns running invocations whose lease expired before now to pending and
// records their attempt as lost.
func (s *Store) Rescue(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.do(ctx, 1, func(w *writer) error {
		t := micros(now)
		if _, err := w.exec(`INSERT OR REPLACE INTO attempts (invocation_id, `+attemptColumns+`)
			SELECT id, attempt, COALESCE(started_at, ?1), ?1, (?1 - COALESCE(started_at, ?1)) / 1000.0, 'lost',
				'lease expired: owner ' || lease_owner || ' stopped heartbeating', '', 0, lease_owner
			FROM invocations INDEXED BY invocations_running
			WHERE state = 'running' AND lease_until < ?1`, t); err != nil {
			return err
		}
		res, err := w.exec(`UPDATE invocations INDEXED BY invocations_running
			SET state = 'pending', error = 'lease expired: owner ' || lease_owner || ' stopped heartbeating',
				lease_owner = '', lease_until = NULL
			WHERE state = 'running' AND lease_until < ?1`, t)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("rescue: %w", err)
	}
	return int(n), nil
}

// get reads an invocation with its event and attempts inside the writer's transaction.
func (w *writer) get(id string) (*fnhost.Invocation, error) {
	inv, err := scanInvocation(w.queryRow(`SELECT `+invColumns+`, event FROM invocations WHERE id = ?`, id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	rs, err := w.query(`SELECT `+attemptColumns+` FROM attempts WHERE invocation_id = ? ORDER BY number`, id)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		a, err := scanAttempt(rs)
		if err != nil {
			return nil, err
		}
		inv.Attempts = append(inv.Attempts, a)
	}
	return inv, rs.Err()
}

// Cancel cancels an invocation that has not finished, and its awaiting children. A
// running invocation loses its lease (its next heartbeat reports it lost, its completion
// is dropped) and its attempt is recorded as cancelled.
func (s *Store) Cancel(ctx context.Context, id string, now time.Time) (*fnhost.Invocation, error) {
	var out *fnhost.Invocation
	err := s.do(ctx, 1, func(w *writer) error {
		inv, err := w.get(id)
		if err != nil {
			return err
		}
		if inv.State.Terminal() {
			return fmt.Errorf("invocation %s is %s: %w", id, inv.State, store.ErrConflict)
		}
		if _, err := w.exec(`UPDATE invocations SET state = 'cancelled', finished_at = ?1, lease_owner = '', lease_until = NULL
			WHERE id = ?2`, micros(now), id); err != nil {
			return err
		}
		if inv.State == fnhost.StateRunning {
			started := now
			if inv.StartedAt != nil {
				started = *inv.StartedAt
			}
			if _, err := w.exec(attemptSQL.get(1), id, inv.Attempt, micros(started), micros(now),
				float64(now.Sub(started).Microseconds())/1000, string(fnhost.OutcomeCancelled), "cancelled",
				"", false, inv.LeaseOwner); err != nil {
				return err
			}
		}
		if err := w.cancelAwaiting(id, now); err != nil {
			return err
		}
		out, err = w.get(id)
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
	err := s.do(ctx, 1, func(w *writer) error {
		inv, err := w.get(id)
		if err != nil {
			return err
		}
		if !inv.State.Terminal() {
			return fmt.Errorf("invocation %s is %s: %w", id, inv.State, store.ErrConflict)
		}
		if _, err := w.exec(`UPDATE invocations SET state = 'pending', run_at = ?1, max_attempts = attempt + ?2,
				finished_at = NULL, lease_owner = '', lease_until = NULL
			WHERE id = ?3`, micros(now), extraAttempts, id); err != nil {
			return err
		}
		if inv.State != fnhost.StateSucceeded {
			if _, err := w.exec(`WITH RECURSIVE tree(id) AS (
					SELECT id FROM invocations WHERE parent_id = ?1 AND state = 'cancelled' AND continuation = 'then'
					UNION
					SELECT i.id FROM invocations i JOIN tree t ON i.parent_id = t.id
					WHERE i.state = 'cancelled' AND i.continuation = 'then'
				)
				UPDATE invocations SET state = 'awaiting', finished_at = NULL
				WHERE id IN (SELECT id FROM tree)`, id); err != nil {
				return fmt.Errorf("restore continuations: %w", err)
			}
		}
		out, err = w.get(id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	return out, nil
}

// Prune deletes finished invocations (succeeded, failed, cancelled) whose finished_at is
// before the given time, with their attempts. It deletes in chunks of
// Options.PruneChunk, one transaction each, so that other writes go on meanwhile.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := s.do(ctx, s.opts.PruneChunk, func(w *writer) error {
			rs, err := w.query(`SELECT id FROM invocations INDEXED BY invocations_finished
				WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?1 LIMIT ?2`,
				micros(before), s.opts.PruneChunk)
			if err != nil {
				return err
			}
			var ids []string
			for rs.Next() {
				var id string
				if err := rs.Scan(&id); err != nil {
					_ = rs.Close()
					return err
				}
				ids = append(ids, id)
			}
			if err := rs.Close(); err != nil {
				return err
			}
			n = len(ids)
			if n == 0 {
				return nil
			}
			list, _ := json.Marshal(ids)
			if _, err := w.exec(`DELETE FROM attempts WHERE invocation_id IN (SELECT value FROM json_each(?1))`, string(list)); err != nil {
				return err
			}
			_, err = w.exec(`DELETE FROM invocations WHERE id IN (SELECT value FROM json_each(?1))`, string(list))
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		total += n
		if n < s.opts.PruneChunk {
			break
		}
	}
	err := s.do(ctx, 1, func(w *writer) error {
		_, err := w.exec(`DELETE FROM throughput WHERE minute < ?`, micros(before.Truncate(time.Minute)))
		return err
	})
	if err != nil {
		return total, fmt.Errorf("prune throughput: %w", err)
	}
	return total, nil
}
