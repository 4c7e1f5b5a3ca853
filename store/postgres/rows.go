package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// invColumns are the invocation columns every read returns, in scanInvocation's order;
// the event, when wanted, comes after them.
const invColumns = `id, function, state, attempt, max_attempts, trigger, dedup_key, priority,
	run_at, created_at, started_at, finished_at, output, error, parent_id, continuation,
	lease_owner, lease_until`

const attemptColumns = `number, started_at, finished_at, duration_ms, outcome, error, log, log_truncated, owner`

// utc is t in UTC: pgx returns times in the local zone.
func utc(t time.Time) time.Time { return t.UTC() }

func optTime(v pgtype.Timestamptz) *time.Time {
	if !v.Valid {
		return nil
	}
	t := v.Time.UTC()
	return &t
}

// ts is t as a nullable timestamptz: NULL when zero.
func ts(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// nullBytes is b, with an empty document as NULL.
func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// scanInvocation reads invColumns, and the event after them when withEvent is set.
func scanInvocation(row pgx.Row, withEvent bool) (*fnhost.Invocation, error) {
	var (
		inv                               fnhost.Invocation
		state, cont                       string
		runAt, createdAt                  time.Time
		startedAt, finishedAt, leaseUntil pgtype.Timestamptz
		output, event                     []byte
		errStr, parentID                  *string
		attempt, maxAttempts, priority    int32
	)
	dest := []any{&inv.ID, &inv.Function, &state, &attempt, &maxAttempts, &inv.Trigger,
		&inv.DedupKey, &priority, &runAt, &createdAt, &startedAt, &finishedAt, &output,
		&errStr, &parentID, &cont, &inv.LeaseOwner, &leaseUntil}
	if withEvent {
		dest = append(dest, &event)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	inv.State = fnhost.State(state)
	inv.Continuation = fnhost.Continuation(cont)
	inv.Attempt, inv.MaxAttempts, inv.Priority = int(attempt), int(maxAttempts), int(priority)
	inv.RunAt = utc(runAt)
	inv.CreatedAt = utc(createdAt)
	inv.StartedAt = optTime(startedAt)
	inv.FinishedAt = optTime(finishedAt)
	inv.LeaseUntil = optTime(leaseUntil)
	if len(output) > 0 {
		inv.Output = json.RawMessage(output)
	}
	if len(event) > 0 {
		inv.Event = json.RawMessage(event)
	}
	inv.Error = errStr
	inv.ParentID = parentID
	return &inv, nil
}

func scanAttempt(row pgx.Row) (fnhost.Attempt, error) {
	var (
		a                 fnhost.Attempt
		number            int32
		started, finished time.Time
		outcome           string
	)
	if err := row.Scan(&number, &started, &finished, &a.DurationMS, &outcome, &a.Error, &a.Log, &a.LogTruncated, &a.Owner); err != nil {
		return a, err
	}
	a.Number = int(number)
	a.StartedAt = utc(started)
	a.FinishedAt = utc(finished)
	a.Outcome = fnhost.Outcome(outcome)
	return a, nil
}

// newRow is a NewInvocation checked and turned into column values.
type newRow struct {
	id, function, state string
	maxAttempts         int32
	trigger, dedupKey   string
	priority            int32
	runAt, created      time.Time
	event               []byte
	parentID            string
	continuation        string
	attempt             int32
	owner               string
	leaseUntil          pgtype.Timestamptz
	startedAt           pgtype.Timestamptz
	// finishedAt, output and errStr are set for an invocation stored finished.
	finishedAt     pgtype.Timestamptz
	output         []byte
	errStr         string
	receiptKey     string
	receiptVersion string
	// done is the completion of an invocation stored finished: the row is inserted in
	// the state the completion leaves it in, and the rest of the completion (the
	// attempt, the children, the spawned invocations) is applied once it is stored.
	done *completion
}

// ready reports whether the row is ready to run once stored.
func (r *newRow) ready() bool { return r.state == string(fnhost.StatePending) }

// prepareNew validates invocations and computes their column values.
func prepareNew(invs []store.NewInvocation) ([]newRow, error) {
	rows := make([]newRow, len(invs))
	var now time.Time
	for i := range invs {
		n := invs[i]
		state, err := store.Normalize(&n, i, &now)
		if err != nil {
			return nil, err
		}
		created := n.CreatedAt
		row := newRow{
			id: n.ID, function: n.Function, state: string(state), trigger: n.Trigger,
			dedupKey: n.DedupKey, priority: int32(n.Priority), runAt: n.RunAt, created: created,
			event: nullBytes(n.Event), parentID: n.ParentID, continuation: string(n.Continuation),
			receiptKey: n.ReceiptKey, receiptVersion: n.ReceiptVersion, maxAttempts: int32(n.MaxAttempts),
		}
		switch {
		case n.Completion != nil:
			// Inserted as the completion leaves a claimed invocation: it already ran.
			comp, err := prepareCompletion(n.Completion, &now)
			if err != nil {
				return nil, fmt.Errorf("invocation %d (%s): %w", i, n.Function, err)
			}
			// The attempt of an invocation stored finished starts at its creation
			// unless it says otherwise.
			if comp.aStarted.IsZero() {
				comp.aStarted = created
			}
			row.done = &comp
			row.state, row.attempt, row.startedAt = string(comp.State), 1, ts(created)
			if !comp.RunAt.IsZero() {
				row.runAt = comp.RunAt // a retry's run_at, as Complete sets it
			}
			row.finishedAt, row.output, row.errStr = comp.finishedAt(), nullBytes(n.Completion.Output), comp.Error
		case n.Owner != "":
			// Inserted already claimed: the caller runs it at once.
			row.attempt, row.owner = 1, n.Owner
			row.leaseUntil, row.startedAt = ts(n.LeaseUntil), ts(created)
		}
		rows[i] = row
	}
	return rows, nil
}

// isPlain reports whether rows are all plain new invocations: no receipt, dedup key,
// completion or parent. Only a conflicting id can keep such a row from being stored,
// and no row depends on another, so they are inserted by one statement.
func isPlain(rows []newRow) bool {
	for i := range rows {
		r := &rows[i]
		if r.receiptKey != "" || r.dedupKey != "" || r.done != nil || r.parentID != "" {
			return false
		}
	}
	return true
}

// rowArrays are the columns of rows to insert, as the arrays of insertSQL.
type rowArrays struct {
	id, function, state           []string
	maxAttempts                   []int32
	trigger, dedupKey             []string
	priority                      []int32
	runAt, created                []time.Time
	event                         [][]byte
	parentID, continuation        []string
	attempt                       []int32
	owner                         []string
	leaseUntil, started, finished []pgtype.Timestamptz
	output                        [][]byte
	errStr                        []string
}

func (a *rowArrays) add(r *newRow) {
	a.id = append(a.id, r.id)
	a.function = append(a.function, r.function)
	a.state = append(a.state, r.state)
	a.maxAttempts = append(a.maxAttempts, r.maxAttempts)
	a.trigger = append(a.trigger, r.trigger)
	a.dedupKey = append(a.dedupKey, r.dedupKey)
	a.priority = append(a.priority, r.priority)
	a.runAt = append(a.runAt, r.runAt)
	a.created = append(a.created, r.created)
	a.event = append(a.event, r.event)
	a.parentID = append(a.parentID, r.parentID)
	a.continuation = append(a.continuation, r.continuation)
	a.attempt = append(a.attempt, r.attempt)
	a.owner = append(a.owner, r.owner)
	a.leaseUntil = append(a.leaseUntil, r.leaseUntil)
	a.started = append(a.started, r.startedAt)
	a.finished = append(a.finished, r.finishedAt)
	a.output = append(a.output, r.output)
	a.errStr = append(a.errStr, r.errStr)
}

func (a *rowArrays) args() []any {
	return []any{a.id, a.function, a.state, a.maxAttempts, a.trigger, a.dedupKey, a.priority, a.runAt,
		a.created, a.event, a.parentID, a.continuation, a.attempt, a.owner, a.leaseUntil, a.started,
		a.finished, a.output, a.errStr}
}

// insertRowsFrom is the source of the rows to insert, from the arrays of
// rowArrays.args as parameters $n….
func insertRowsFrom(n int) string {
	p := func(i int, typ string) string { return "$" + strconv.Itoa(n+i) + "::" + typ }
	return `SELECT x.id, x.function, x.state, x.max_attempts, x.trigger, x.dedup_key, x.priority,
		x.run_at, x.created_at, x.event, NULLIF(x.parent_id, ''), x.continuation, x.attempt, x.lease_owner,
		x.lease_until, x.started_at, x.finished_at, x.output, NULLIF(x.error, '')
	FROM unnest(` + p(0, "text[]") + `, ` + p(1, "text[]") + `, ` + p(2, "text[]") + `, ` + p(3, "int[]") + `, ` +
		p(4, "text[]") + `, ` + p(5, "text[]") + `, ` + p(6, "int[]") + `, ` + p(7, "timestamptz[]") + `, ` +
		p(8, "timestamptz[]") + `, ` + p(9, "bytea[]") + `, ` + p(10, "text[]") + `, ` + p(11, "text[]") + `, ` +
		p(12, "int[]") + `, ` + p(13, "text[]") + `, ` + p(14, "timestamptz[]") + `, ` + p(15, "timestamptz[]") + `, ` +
		p(16, "timestamptz[]") + `, ` + p(17, "bytea[]") + `, ` + p(18, "text[]") + `)
		AS x(id, function, state, max_attempts, trigger, dedup_key, priority, run_at, created_at, event,
			parent_id, continuation, attempt, lease_owner, lease_until, started_at, finished_at, output, error)`
}

// insertInto is the INSERT of the rows of insertRowsFrom(n) that leaves out those whose
// id or dedup key is taken, and returns the columns named by returning of those it
// inserted.
func insertInto(n int, returning string) string {
	return `INSERT INTO invocations (id, function, state, max_attempts, trigger, dedup_key, priority,
		run_at, created_at, event, parent_id, continuation, attempt, lease_owner, lease_until, started_at,
		finished_at, output, error)
	` + insertRowsFrom(n) + `
	ON CONFLICT DO NOTHING
	RETURNING ` + returning
}

// insertSQL inserts rows from the arrays of rowArrays.args.
var insertSQL = insertInto(1, "id")
