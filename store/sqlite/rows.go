package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// invColumns are the invocation columns every read returns, in scanInvocation's order;
// the event, when wanted, comes after them.
const invColumns = `id, function, state, attempt, max_attempts, trigger, dedup_key, priority,
	run_at, created_at, started_at, finished_at, output, error, parent_id, continuation,
	lease_owner, lease_until`

const attemptColumns = `number, started_at, finished_at, duration_ms, outcome, error, log, log_truncated, owner`

type scanner interface {
	Scan(dest ...any) error
}

// micros is the stored form of a time: unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the time of a stored value, in UTC.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func optTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func optString(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	s := v.String
	return &s
}

// nullBytes stores an empty JSON document as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// scanInvocation reads invColumns, and the event after them when withEvent is set.
func scanInvocation(sc scanner, withEvent bool) (*fnhost.Invocation, error) {
	var (
		inv                               fnhost.Invocation
		state, cont                       string
		runAt, createdAt                  int64
		startedAt, finishedAt, leaseUntil sql.NullInt64
		output, event                     []byte
		errStr, parentID                  sql.NullString
	)
	dest := []any{&inv.ID, &inv.Function, &state, &inv.Attempt, &inv.MaxAttempts, &inv.Trigger,
		&inv.DedupKey, &inv.Priority, &runAt, &createdAt, &startedAt, &finishedAt, &output,
		&errStr, &parentID, &cont, &inv.LeaseOwner, &leaseUntil}
	if withEvent {
		dest = append(dest, &event)
	}
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	inv.State = fnhost.State(state)
	inv.Continuation = fnhost.Continuation(cont)
	inv.RunAt = fromMicros(runAt)
	inv.CreatedAt = fromMicros(createdAt)
	inv.StartedAt = optTime(startedAt)
	inv.FinishedAt = optTime(finishedAt)
	inv.LeaseUntil = optTime(leaseUntil)
	if len(output) > 0 {
		inv.Output = json.RawMessage(output)
	}
	if len(event) > 0 {
		inv.Event = json.RawMessage(event)
	}
	inv.Error = optString(errStr)
	inv.ParentID = optString(parentID)
	return &inv, nil
}

func scanAttempt(sc scanner) (fnhost.Attempt, error) {
	var (
		a                 fnhost.Attempt
		started, finished int64
		outcome           string
		truncated         int
	)
	if err := sc.Scan(&a.Number, &started, &finished, &a.DurationMS, &outcome, &a.Error, &a.Log, &truncated, &a.Owner); err != nil {
		return a, err
	}
	a.StartedAt = fromMicros(started)
	a.FinishedAt = fromMicros(finished)
	a.Outcome = fnhost.Outcome(outcome)
	a.LogTruncated = truncated != 0
	return a, nil
}

// insertColumns are the columns of a new invocation, newRow.args' order.
const insertColumns = `id, function, state, max_attempts, trigger, dedup_key, priority, run_at, created_at,
	event, parent_id, continuation, attempt, lease_owner, lease_until, started_at`

const insertWidth = 16

// finishedColumns follow insertColumns for an invocation stored finished; the other
// rows leave them out (they are NULL), which keeps the common insert narrower.
const finishedColumns = `, finished_at, output, error`

const finishedWidth = insertWidth + 3

// insertChunk is how many invocations one INSERT statement writes.
const insertChunk = 64

// newRow is a NewInvocation checked and turned into column values.
type newRow struct {
	args     [finishedWidth]any
	id       string
	function string
	dedupKey string
	parentID string
	// created is the creation time (micros), which also dates the receipt.
	created        int64
	receiptKey     string
	receiptVersion string
	// done is the completion of an invocation stored finished: the row is inserted
	// in the state the completion leaves it in, and the rest of the completion (the
	// attempt, the children, the spawned invocations) is applied once it is stored.
	done *completion
}

// prepareNew validates invocations and computes their column values. It runs in the
// caller's goroutine, so that the writer only executes.
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
		attempt, owner, leaseUntil, startedAt := 0, "", any(nil), any(nil)
		var finishedAt, output, errStr any
		runAt := any(micros(n.RunAt))
		var done *completion
		switch {
		case n.Completion != nil:
			// Inserted as the completion leaves a claimed invocation: it already ran.
			comp, err := prepareCompletion(n.Completion, &now)
			if err != nil {
				return nil, fmt.Errorf("invocation %d (%s): %w", i, n.Function, err)
			}
			done = &comp
			state, attempt, startedAt = comp.State, 1, micros(created)
			if comp.args[2] != nil {
				runAt = comp.args[2] // a retry's run_at, as Complete sets it
			}
			finishedAt, output, errStr = comp.args[3], comp.args[4], comp.args[5]
		case n.Owner != "":
			// Inserted already claimed: the caller runs it at once.
			attempt, owner = 1, n.Owner
			leaseUntil, startedAt = micros(n.LeaseUntil), micros(created)
		}
		rows[i] = newRow{
			args: [finishedWidth]any{n.ID, n.Function, string(state), n.MaxAttempts, n.Trigger, n.DedupKey,
				n.Priority, runAt, micros(created), nullBytes(n.Event), nullString(n.ParentID),
				string(n.Continuation), attempt, owner, leaseUntil, startedAt, finishedAt, output, errStr},
			id:             n.ID,
			function:       n.Function,
			dedupKey:       n.DedupKey,
			parentID:       n.ParentID,
			created:        micros(created),
			receiptKey:     n.ReceiptKey,
			receiptVersion: n.ReceiptVersion,
			done:           done,
		}
	}
	return rows, nil
}

// valuesSQL returns n groups of width placeholders: (?,?),(?,?)…
func valuesSQL(n, width int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?,", width), ",") + ")"
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	return b.String()
}

// sqlCache holds the text of statements that take n rows, built once per n and shared
// by the writers of every open Store.
type sqlCache struct {
	build func(n int) string
	mu    sync.Mutex
	texts map[int]string
}

func (c *sqlCache) get(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.texts[n]; ok {
		return s
	}
	if c.texts == nil {
		c.texts = make(map[int]string)
	}
	s := c.build(n)
	c.texts[n] = s
	return s
}
