// Package store defines the Store interface that persists invocations, and the types
// its methods exchange. Implementations live in sub-packages (sqlite, postgres) and must
// all pass the conformance suite in storetest.
//
// The contract is written for an executor that claims work in batches and completes it
// in batches: every method takes slices where a batch makes sense, so that an
// implementation can turn many calls into one transaction.
package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fnhost/fnhost"
)

// ErrNotFound is returned for an invocation id the store does not hold.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an action does not fit the invocation's state, such as
// retrying a running invocation.
var ErrConflict = errors.New("conflict")

// NewInvocation is an invocation to persist.
type NewInvocation struct {
	// ID is set by the caller so that it is known before the write: a ULID of the
	// creation time, fnhost.NewIDAt(CreatedAt). List finds the invocations created in a
	// time range by their ids, so an id whose time is not its CreatedAt may be missed by
	// a List with Since or Until.
	ID       string
	Function string
	Trigger  string
	// Event is the CloudEvent JSON handed to the handler.
	Event json.RawMessage
	// DedupKey, when set, makes the invocation unique per function: a second enqueue with
	// the same function and key returns the first invocation's id with Duplicate set.
	DedupKey    string
	Priority    int
	MaxAttempts int
	// RunAt is when the invocation may run; zero means CreatedAt. A RunAt after
	// CreatedAt makes it scheduled, otherwise it is pending.
	RunAt time.Time
	// Awaiting makes the invocation wait for its parent (state awaiting).
	Awaiting     bool
	ParentID     string
	Continuation fnhost.Continuation
	CreatedAt    time.Time
	// Owner, when set, inserts the invocation already claimed by Owner until LeaseUntil:
	// running, attempt 1, started at CreatedAt. A host that runs a synchronous
	// invocation itself saves the separate claim this way.
	Owner      string
	LeaseUntil time.Time
	// Completion, when set, stores an invocation that already ran, in one write: a host
	// that ran a short synchronous handler before storing anything stores its outcome
	// with it. It needs Owner (LeaseUntil may then be zero: no lease is left). The
	// invocation is inserted claimed by Owner (running, attempt 1, started at
	// CreatedAt) and the completion is applied to it in the same transaction, exactly as
	// Complete would apply it: the attempt is recorded as attempt 1, the invocation
	// becomes succeeded, failed or cancelled, or scheduled (or pending) for a retry at
	// RunAt, with its output and error; a success wakes its awaiting `then` children
	// (with ThenEvent) and any other end cancels its awaiting children, among them
	// those later in the same Enqueue call; Spawn is enqueued. The Completion's ID and
	// Owner must be the invocation's (empty means the invocation's). When the
	// invocation is a duplicate (by id, dedup key or receipt), nothing of the completion
	// is applied and its Spawn is not enqueued. An invocation in a Completion's Spawn
	// cannot carry a Completion itself.
	Completion *Completion
	// ReceiptKey, when set, names the source object the invocation is for (a file, an
	// S3 object): the store keeps one receipt per function and ReceiptKey holding the
	// last ReceiptVersion enqueued and that invocation's id. An enqueue whose receipt
	// already holds the same version is a duplicate of the receipt's invocation, and
	// nothing is stored; otherwise the invocation is stored and the receipt set to its
	// version and id, in the same transaction. Receipts are independent of DedupKey
	// (either one can make an invocation a duplicate; a duplicate leaves the receipt as
	// it was) and of the invocation's life: Prune keeps them, so an object seen months
	// ago is still not submitted again; ForgetReceipts drops them.
	ReceiptKey string
	// ReceiptVersion is the version of the object (an ETag, a version id, a size and
	// modification time), compared as an opaque string; empty is a version like any
	// other. It needs a ReceiptKey.
	ReceiptVersion string
}

// EnqueueResult tells what became of one NewInvocation.
type EnqueueResult struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// ClaimRequest asks for ready invocations (pending, or scheduled with run_at <= Now).
type ClaimRequest struct {
	Owner      string
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
	// Functions, when not empty, restricts the claim to these functions.
	Functions []string
	// Exclude leaves out these functions (they are at their concurrency cap).
	Exclude []string
}

// Completion is the end of one attempt, as the executor reports it.
type Completion struct {
	ID    string
	Owner string
	// Attempt is recorded in the invocation's attempt log.
	Attempt fnhost.Attempt
	// State is the next state: succeeded, failed, or scheduled (a retry at RunAt).
	State  fnhost.State
	RunAt  time.Time
	Output json.RawMessage
	Error  string
	// ThenEvent, on success, wakes the awaiting `then` children with this event.
	ThenEvent json.RawMessage
	// Spawn is enqueued in the same transaction (on_failure continuations, messages).
	Spawn []NewInvocation
}

// Filter selects invocations for List. Items come newest first.
type Filter struct {
	Function string
	State    fnhost.State
	Trigger  string
	ParentID string
	// Since (inclusive) and Until (exclusive) bound created_at.
	Since, Until time.Time
	Limit        int
	Cursor       string
	// MaxScan, when positive, bounds the rows List examines beyond those its indexes
	// select exactly (the filters an index cannot answer, such as a trigger, are
	// checked row by row): List then stops after MaxScan candidate rows, and the page may
	// hold fewer than Limit items, even none, while NextCursor is set; the listing goes
	// on from there. Zero examines as many rows as it takes to fill the page.
	MaxScan int
}

// Page is one page of a List.
type Page struct {
	Items      []*fnhost.Invocation `json:"items"`
	NextCursor string               `json:"next_cursor"`
}

// Stats are counts for metrics and the dashboard.
type Stats struct {
	// ByState counts invocations per state.
	ByState map[fnhost.State]int64
	// Ready counts invocations that could run now (the queue depth).
	Ready int64
}

// Bucket counts the attempts of one function that ended in one minute.
type Bucket struct {
	// Minute is the start of the minute, in UTC.
	Minute   time.Time `json:"minute"`
	Function string    `json:"function"`
	// Succeeded counts the attempts that succeeded.
	Succeeded int64 `json:"succeeded"`
	// Failed counts the attempts that failed or timed out, whether retried or not.
	Failed int64 `json:"failed"`
	// Dead counts the invocations whose attempt ended them failed: attempts exhausted,
	// or a permanent failure.
	Dead int64 `json:"dead"`
}

// FunctionCounts are the invocations of one function in each state that has an index
// of its own: every state but succeeded.
type FunctionCounts struct {
	Scheduled, Pending, Running, Awaiting, Failed, Cancelled int64
	// Ready counts the pending invocations and the scheduled ones due at the time
	// asked for: the function's backlog.
	Ready int64
	// OldestReady is the earliest run_at of the ready invocations (the one waiting
	// longest); zero when none is ready.
	OldestReady time.Time
}

// counter is the field of c that counts state, nil for succeeded.
func (c *FunctionCounts) counter(state fnhost.State) *int64 {
	switch state {
	case fnhost.StateScheduled:
		return &c.Scheduled
	case fnhost.StatePending:
		return &c.Pending
	case fnhost.StateRunning:
		return &c.Running
	case fnhost.StateAwaiting:
		return &c.Awaiting
	case fnhost.StateFailed:
		return &c.Failed
	case fnhost.StateCancelled:
		return &c.Cancelled
	}
	return nil
}

// Set sets the count of state (succeeded is not counted: it is ignored).
func (c *FunctionCounts) Set(state fnhost.State, n int64) {
	if p := c.counter(state); p != nil {
		*p = n
	}
}

// Of returns the count of state, 0 for succeeded.
func (c FunctionCounts) Of(state fnhost.State) int64 {
	if p := c.counter(state); p != nil {
		return *p
	}
	return 0
}

// TotalCounts sums the counts of every function: the earliest OldestReady of them.
func TotalCounts(counts map[string]FunctionCounts) FunctionCounts {
	var t FunctionCounts
	for _, c := range counts {
		for _, s := range fnhost.States {
			t.Set(s, t.Of(s)+c.Of(s))
		}
		t.Ready += c.Ready
		if !c.OldestReady.IsZero() && (t.OldestReady.IsZero() || c.OldestReady.Before(t.OldestReady)) {
			t.OldestReady = c.OldestReady
		}
	}
	return t
}

// Store persists invocations and their attempts. Every method is safe for concurrent use.
type Store interface {
	// Enqueue persists invocations atomically; when it returns nil they are durable. An
	// id that is already stored is reported as a duplicate, so retrying an Enqueue whose
	// answer was lost is safe. An invocation is also a duplicate when its function and
	// DedupKey are stored, or when its receipt holds its ReceiptVersion (see
	// NewInvocation); this holds between invocations of the same call too, the first one
	// winning. A duplicate's result holds the stored invocation's id.
	//
	// The continuations of a duplicate that come later in the same call (invocations
	// whose ParentID is its ID, and theirs, transitively) are not stored either, since
	// their parent is not: their results hold their own ids, with Duplicate set.
	//
	// An invocation with a Completion is stored already finished, its completion applied
	// in the same transaction (see NewInvocation.Completion).
	Enqueue(ctx context.Context, invs []NewInvocation) ([]EnqueueResult, error)
	// Claim moves up to Limit ready invocations to running, owned by Owner until
	// LeaseUntil, incrementing their attempt number. Higher priority first, then run_at,
	// then id; the invocations come back in that order, with their event and without
	// attempts.
	Claim(ctx context.Context, req ClaimRequest) ([]*fnhost.Invocation, error)
	// Heartbeat extends the lease of the listed invocations still running under owner
	// and returns the ids among them that it no longer holds (cancelled or rescued).
	Heartbeat(ctx context.Context, owner string, ids []string, leaseUntil time.Time) (lost []string, err error)
	// Complete records finished attempts. A completion for an invocation no longer
	// running under its owner is not applied; its id is returned in dropped. The
	// attempt's number is taken from the stored invocation, not from the Completion.
	Complete(ctx context.Context, cs []Completion) (dropped []string, err error)
	// Release hands running invocations back (graceful shutdown): they become pending
	// and the interrupted attempt is recorded as released. A released attempt does not
	// count against max_attempts (max_attempts grows by one).
	Release(ctx context.Context, owner string, attempts map[string]fnhost.Attempt, now time.Time) error
	// Rescue returns running invocations whose lease expired before now to pending,
	// recording the attempt as lost. A lost attempt counts: claimed again, the invocation
	// gets the next attempt number, and the executor fails one claimed beyond its
	// max_attempts without running it, so a job that keeps killing its host still runs
	// out of attempts. It returns how many it rescued.
	Rescue(ctx context.Context, now time.Time) (int, error)
	// Get returns one invocation with its attempts.
	Get(ctx context.Context, id string) (*fnhost.Invocation, error)
	// List returns invocations matching f, newest first, without attempts or event.
	List(ctx context.Context, f Filter) (Page, error)
	// Retry makes a terminal invocation pending again with extraAttempts more attempts.
	Retry(ctx context.Context, id string, now time.Time, extraAttempts int) (*fnhost.Invocation, error)
	// Cancel cancels an invocation that has not finished, and its awaiting children. A
	// running one gets a cancelled attempt recorded; its handler learns of it at the
	// next Heartbeat.
	Cancel(ctx context.Context, id string, now time.Time) (*fnhost.Invocation, error)
	// Prune deletes terminal invocations that finished before the given time, and the
	// Throughput buckets of the minutes before it.
	Prune(ctx context.Context, before time.Time) (int, error)
	// Stats counts invocations by state.
	Stats(ctx context.Context, now time.Time) (Stats, error)
	// Counts returns, for each function with invocations in a state other than
	// succeeded, how many it has in each of them, and its ready backlog at now. It reads
	// the indexes of those states only, so that its cost follows the live work and the
	// failed and cancelled sets, never the succeeded bulk of the history; Throughput
	// tells how many succeeded.
	Counts(ctx context.Context, now time.Time) (map[string]FunctionCounts, error)
	// Throughput returns the buckets of the minutes from since on, ordered by minute,
	// then function. Complete and Enqueue with a Completion count the attempts they
	// record, in the same transaction; lost, released and cancelled attempts are not
	// counted. Prune drops the buckets of the minutes before its time.
	Throughput(ctx context.Context, since time.Time) ([]Bucket, error)

	// GetState returns the trigger state stored under key (a cron trigger's last slot,
	// a poll checkpoint), or nil, nil when the key is unset. A stored empty value comes
	// back as an empty, non-nil slice.
	GetState(ctx context.Context, key string) ([]byte, error)
	// PutState stores value under key, replacing what was there. A nil value is stored
	// as an empty one.
	PutState(ctx context.Context, key string, value []byte) error
	// CompareAndPutState stores new under key only if the key's current value equals
	// old, byte for byte, and reports whether it did. A nil old means the key must be
	// unset; an empty, non-nil old matches a stored empty value. Of several instances
	// racing with the same old, exactly one wins.
	CompareAndPutState(ctx context.Context, key string, old, new []byte) (bool, error)

	// Receipts returns, for those of keys that have a receipt of function, the version
	// it holds (key to version). It takes thousands of keys in one call.
	Receipts(ctx context.Context, function string, keys []string) (map[string]string, error)
	// ForgetReceipts deletes the receipts of function for keys (their objects are
	// gone): an object that comes back is submitted again whatever its version. Keys
	// without a receipt are ignored.
	ForgetReceipts(ctx context.Context, function string, keys []string) error
	// ReceiptKeys lists up to limit receipt keys of function that start with prefix and
	// sort after after, in byte order; limit <= 0 lists none. Passing the last key of a
	// page as after gives the next page.
	ReceiptKeys(ctx context.Context, function, prefix, after string, limit int) ([]string, error)

	// ServerHeartbeat records that the fnhost instance s.ID is alive at s.HeartbeatAt,
	// registering it on its first call and updating its other fields on every call.
	ServerHeartbeat(ctx context.Context, s Server) error
	// Servers lists the registered instances whose last heartbeat is at or after since,
	// by id.
	Servers(ctx context.Context, since time.Time) ([]Server, error)
	// RemoveServer unregisters an instance (a graceful stop). An unknown id is ignored.
	RemoveServer(ctx context.Context, id string) error
	// PruneServers unregisters the instances whose last heartbeat is before before and
	// returns how many.
	PruneServers(ctx context.Context, before time.Time) (int, error)

	// Close releases the store's resources.
	Close() error
}

// Server is one fnhost instance working on the store.
type Server struct {
	ID          string    `json:"id"`
	Hostname    string    `json:"hostname"`
	PID         int       `json:"pid"`
	Version     string    `json:"version"`
	Workers     int       `json:"workers"`
	InFlight    int       `json:"in_flight"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// Notifier is implemented by stores that several hosts share and that can tell each of
// them when work became ready elsewhere (PostgreSQL's LISTEN/NOTIFY), so that an idle
// host starts it at once instead of at its next poll.
type Notifier interface {
	// Notify returns a channel that receives (coalesced: it holds at most one value)
	// when invocations became ready: enqueued, retried, released, rescued, or a then
	// continuation whose parent finished. It may also receive without cause, after a
	// lost connection for instance.
	Notify() <-chan struct{}
}

// Normalize checks one invocation of an Enqueue against the contract and fills in what
// the contract leaves to defaults, for the stores to share one reading of it:
// CreatedAt (*now, set on first use), ID (a ULID of CreatedAt), RunAt (CreatedAt),
// MaxAttempts (at least 1), and its Completion's ID and Owner (the invocation's, on a
// copy of the Completion). It returns the state the invocation is inserted in, before a
// Completion is applied: running when it has an Owner, awaiting, scheduled when RunAt is
// after CreatedAt, else pending. i numbers the invocation in errors.
func Normalize(n *NewInvocation, i int, now *time.Time) (fnhost.State, error) {
	fail := func(format string, args ...any) (fnhost.State, error) {
		return "", fmt.Errorf("invocation %d (%s): %s", i, n.Function, fmt.Sprintf(format, args...))
	}
	if n.Function == "" {
		return "", fmt.Errorf("invocation %d: function is required", i)
	}
	if n.Awaiting && n.ParentID == "" {
		return fail("awaiting needs a parent id")
	}
	if len(n.Event) > 0 && !json.Valid(n.Event) {
		return fail("event is not valid JSON")
	}
	if n.ReceiptVersion != "" && n.ReceiptKey == "" {
		return fail("a receipt version needs a receipt key")
	}
	if n.CreatedAt.IsZero() {
		if now.IsZero() {
			*now = time.Now()
		}
		n.CreatedAt = *now
	}
	if n.ID == "" {
		n.ID = fnhost.NewIDAt(n.CreatedAt)
	}
	if n.RunAt.IsZero() {
		n.RunAt = n.CreatedAt
	}
	n.MaxAttempts = max(n.MaxAttempts, 1)
	switch {
	case n.Completion != nil:
		if n.Owner == "" {
			return fail("a completion needs an owner")
		}
		if n.Awaiting {
			return fail("an awaiting invocation cannot have an owner")
		}
		c := *n.Completion
		if c.ID == "" {
			c.ID = n.ID
		}
		if c.Owner == "" {
			c.Owner = n.Owner
		}
		if c.ID != n.ID || c.Owner != n.Owner {
			return fail("its completion is for %s owned by %s, not %s owned by %s", c.ID, c.Owner, n.ID, n.Owner)
		}
		n.Completion = &c
		return fnhost.StateRunning, nil
	case n.Owner != "":
		if n.Awaiting {
			return fail("an awaiting invocation cannot have an owner")
		}
		if n.LeaseUntil.IsZero() {
			return fail("an owner needs a lease_until")
		}
		return fnhost.StateRunning, nil
	case n.Awaiting:
		return fnhost.StateAwaiting, nil
	case n.RunAt.After(n.CreatedAt):
		return fnhost.StateScheduled, nil
	}
	return fnhost.StatePending, nil
}

// Normalize checks a claim against the contract and returns the functions it asks for
// (those of Functions less Exclude, without repeats; nil for every function) and the
// claim time (Now, or the wall clock when zero). none reports a claim that can take
// nothing: no room (Limit <= 0) or every function asked for excluded.
func (r *ClaimRequest) Normalize() (functions []string, now time.Time, none bool, err error) {
	if r.Limit <= 0 {
		return nil, time.Time{}, true, nil
	}
	if r.Owner == "" {
		return nil, time.Time{}, false, errors.New("owner is required")
	}
	if r.LeaseUntil.IsZero() {
		return nil, time.Time{}, false, errors.New("lease_until is required")
	}
	now = r.Now
	if now.IsZero() {
		now = time.Now()
	}
	if len(r.Functions) == 0 {
		return nil, now, false, nil
	}
	functions = make([]string, 0, len(r.Functions))
	for _, f := range r.Functions {
		if !slices.Contains(r.Exclude, f) && !slices.Contains(functions, f) {
			functions = append(functions, f)
		}
	}
	return functions, now, len(functions) == 0, nil
}

// SortClaimed puts claimed invocations in claim order: priority (highest first), then
// run_at, then id.
func SortClaimed(invs []*fnhost.Invocation) {
	slices.SortFunc(invs, func(a, b *fnhost.Invocation) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// Done is a Completion read against the contract, its defaults applied.
type Done struct {
	// State is the next state; a retry due at or before the finish is pending.
	State fnhost.State
	// Finished is when the attempt finished: its FinishedAt, or the wall clock.
	Finished time.Time
	// RunAt is the run_at of a retry (State scheduled or pending); zero for an end.
	RunAt time.Time
	// Error is the invocation's error: the Completion's, else, unless it succeeded,
	// its attempt's.
	Error string
	// Outcome is the attempt's outcome: its own, else the one State implies.
	Outcome fnhost.Outcome
	// AttemptOwner is the attempt's owner: its own, else the Completion's.
	AttemptOwner string
}

// NormalizeCompletion checks a completion against the contract and applies its
// defaults, for the stores to share one reading of it. A finish time it lacks is *now,
// set on first use.
func NormalizeCompletion(c *Completion, now *time.Time) (Done, error) {
	if c.ID == "" || c.Owner == "" {
		return Done{}, errors.New("completion: id and owner are required")
	}
	fail := func(format string, args ...any) (Done, error) {
		return Done{}, fmt.Errorf("completion %s: %s", c.ID, fmt.Sprintf(format, args...))
	}
	d := Done{State: c.State, Finished: c.Attempt.FinishedAt, Error: c.Error, Outcome: c.Attempt.Outcome, AttemptOwner: c.Attempt.Owner}
	switch d.State {
	case fnhost.StateSucceeded, fnhost.StateFailed, fnhost.StateCancelled, fnhost.StateScheduled, fnhost.StatePending:
	default:
		return fail("cannot complete to state %q", d.State)
	}
	if len(c.Output) > 0 && !json.Valid(c.Output) {
		return fail("output is not valid JSON")
	}
	if len(c.ThenEvent) > 0 && !json.Valid(c.ThenEvent) {
		return fail("then event is not valid JSON")
	}
	for i := range c.Spawn {
		if c.Spawn[i].Completion != nil {
			return fail("spawn %d: a spawned invocation cannot carry a completion", i)
		}
	}
	if d.Finished.IsZero() {
		if now.IsZero() {
			*now = time.Now()
		}
		d.Finished = *now
	}
	if d.State == fnhost.StateScheduled || d.State == fnhost.StatePending {
		d.RunAt = c.RunAt
		if d.RunAt.IsZero() {
			d.RunAt = d.Finished
		}
		if !d.RunAt.After(d.Finished) {
			d.State = fnhost.StatePending
		}
	}
	if d.Error == "" && d.State != fnhost.StateSucceeded {
		d.Error = c.Attempt.Error
	}
	if d.Outcome == "" {
		switch d.State {
		case fnhost.StateSucceeded:
			d.Outcome = fnhost.OutcomeSucceeded
		case fnhost.StateCancelled:
			d.Outcome = fnhost.OutcomeCancelled
		default:
			d.Outcome = fnhost.OutcomeFailed
		}
	}
	if d.AttemptOwner == "" {
		d.AttemptOwner = c.Owner
	}
	return d, nil
}
