package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// The subtests of invocations stored already finished: NewInvocation.Completion.

// ranInv is an invocation of fn created at created that owner ran before storing it.
func ranInv(fn, owner string, created time.Time) store.NewInvocation {
	inv := newInv(fn, created)
	inv.Trigger = "http"
	inv.Owner, inv.LeaseUntil = owner, created.Add(30*time.Second)
	return inv
}

// twins stores inv in one write, with c as its Completion, and a copy of it (another
// id) the way of two writes: Enqueue with Owner, then Complete with c. It returns the
// two invocations as stored, the one-write one first, and checks that they are the
// same in every field but the id.
func (b *bundle) twins(inv store.NewInvocation, c store.Completion) (one, two *fnhost.Invocation) {
	b.t.Helper()
	twin := inv
	twin.ID = fnhost.NewIDAt(inv.CreatedAt)
	inv.Completion = &c
	b.enqueue(inv)
	b.enqueue(twin)
	c.ID, c.Owner = twin.ID, twin.Owner
	if dropped := b.complete(c); len(dropped) != 0 {
		b.t.Fatalf("Complete of the twin dropped %v", dropped)
	}
	one, two = b.get(inv.ID), b.get(twin.ID)
	wantSameInvocation(b.t, one, two)
	return one, two
}

// wantSameInvocation compares every field of two invocations but their ids.
func wantSameInvocation(t *testing.T, got, want *fnhost.Invocation) {
	t.Helper()
	what := "stored in one write vs completed: "
	wantEq(t, what+"function", got.Function, want.Function)
	wantEq(t, what+"state", got.State, want.State)
	wantEq(t, what+"attempt", got.Attempt, want.Attempt)
	wantEq(t, what+"max_attempts", got.MaxAttempts, want.MaxAttempts)
	wantEq(t, what+"trigger", got.Trigger, want.Trigger)
	wantEq(t, what+"dedup_key", got.DedupKey, want.DedupKey)
	wantEq(t, what+"priority", got.Priority, want.Priority)
	wantTime(t, what+"run_at", got.RunAt, want.RunAt)
	wantTime(t, what+"created_at", got.CreatedAt, want.CreatedAt)
	wantSameTimePtr(t, what+"started_at", got.StartedAt, want.StartedAt)
	wantSameTimePtr(t, what+"finished_at", got.FinishedAt, want.FinishedAt)
	wantSameTimePtr(t, what+"lease_until", got.LeaseUntil, want.LeaseUntil)
	wantEq(t, what+"lease_owner", got.LeaseOwner, want.LeaseOwner)
	wantJSON(t, what+"event", got.Event, want.Event)
	wantJSON(t, what+"output", got.Output, want.Output)
	if (got.Error == nil) != (want.Error == nil) || (got.Error != nil && *got.Error != *want.Error) {
		t.Fatalf("%serror: %v, want %v", what, optStr(got.Error), optStr(want.Error))
	}
	if (got.ParentID == nil) != (want.ParentID == nil) || (got.ParentID != nil && *got.ParentID != *want.ParentID) {
		t.Fatalf("%sparent_id: %v, want %v", what, optStr(got.ParentID), optStr(want.ParentID))
	}
	wantEq(t, what+"continuation", got.Continuation, want.Continuation)
	wantEq(t, what+"attempts", len(got.Attempts), len(want.Attempts))
	for i, a := range got.Attempts {
		w := want.Attempts[i]
		wantEq(t, what+"attempt number", a.Number, w.Number)
		wantTime(t, what+"attempt started_at", a.StartedAt, w.StartedAt)
		wantTime(t, what+"attempt finished_at", a.FinishedAt, w.FinishedAt)
		wantEq(t, what+"attempt duration_ms", a.DurationMS, w.DurationMS)
		wantEq(t, what+"attempt outcome", a.Outcome, w.Outcome)
		wantEq(t, what+"attempt error", a.Error, w.Error)
		wantEq(t, what+"attempt log", a.Log, w.Log)
		wantEq(t, what+"attempt log_truncated", a.LogTruncated, w.LogTruncated)
		wantEq(t, what+"attempt owner", a.Owner, w.Owner)
	}
}

func wantSameTimePtr(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	if want == nil {
		wantNilTime(t, what, got)
		return
	}
	wantTimePtr(t, what, got, *want)
}

func optStr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func testEnqueueFinishedSucceeded(t *testing.T, b *bundle) {
	created := at(time.Second)
	inv := ranInv("sync", "host-1", created)
	inv.Priority, inv.MaxAttempts = 3, 4
	finished := created.Add(40 * time.Millisecond)
	c := store.Completion{
		State: fnhost.StateSucceeded, Output: json.RawMessage(`{"status": 200, "body": [1, 2]}`),
		Attempt: fnhost.Attempt{
			Number: 1, StartedAt: created, FinishedAt: finished, DurationMS: 38.5,
			Outcome: fnhost.OutcomeSucceeded, Log: "handled\n", Owner: "host-1",
		},
	}
	got, _ := b.twins(inv, c)
	wantEq(t, "state", got.State, fnhost.StateSucceeded)
	wantEq(t, "attempt", got.Attempt, 1)
	wantEq(t, "max_attempts", got.MaxAttempts, 4)
	wantEq(t, "priority", got.Priority, 3)
	wantEq(t, "trigger", got.Trigger, "http")
	wantJSON(t, "output", got.Output, c.Output)
	wantJSON(t, "event", got.Event, inv.Event)
	wantTime(t, "created_at", got.CreatedAt, created)
	wantTime(t, "run_at", got.RunAt, created)
	wantTimePtr(t, "started_at", got.StartedAt, created)
	wantTimePtr(t, "finished_at", got.FinishedAt, finished)
	wantEq(t, "lease_owner", got.LeaseOwner, "")
	wantNilTime(t, "lease_until", got.LeaseUntil)
	if got.Error != nil {
		t.Fatalf("error %q, want nil", *got.Error)
	}
	wantAttempts(t, got, fnhost.OutcomeSucceeded)
	a := got.Attempts[0]
	wantTime(t, "attempt started_at", a.StartedAt, created)
	wantTime(t, "attempt finished_at", a.FinishedAt, finished)
	wantEq(t, "attempt duration_ms", a.DurationMS, 38.5)
	wantEq(t, "attempt log", a.Log, "handled\n")
	wantEq(t, "attempt owner", a.Owner, "host-1")

	// It is finished: not claimable, its lease not held, a late completion dropped.
	if claimed := b.claim("w", at(time.Hour), 10); len(claimed) != 0 {
		t.Fatalf("Claim after finished enqueues: %v, want none", ids(claimed))
	}
	lost, err := b.s.Heartbeat(b.ctx, "host-1", []string{inv.ID}, at(time.Minute))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	wantIDs(t, "lost", lost, []string{inv.ID})
	dropped := b.complete(store.Completion{ID: inv.ID, Owner: "host-1", State: fnhost.StateFailed,
		Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: at(time.Hour), Outcome: fnhost.OutcomeFailed}})
	wantIDs(t, "dropped", dropped, []string{inv.ID})

	// Without a start time, the attempt starts at the creation; without a lease, the
	// owner is enough; the completion's id and owner may be left out.
	plain := ranInv("sync", "host-1", at(2*time.Second))
	plain.LeaseUntil = time.Time{}
	plain.Completion = &store.Completion{State: fnhost.StateSucceeded,
		Attempt: fnhost.Attempt{FinishedAt: at(2500 * time.Millisecond)}}
	b.enqueue(plain)
	got = b.wantState(plain.ID, fnhost.StateSucceeded)
	wantAttempts(t, got, fnhost.OutcomeSucceeded)
	wantTime(t, "attempt started_at", got.Attempts[0].StartedAt, at(2*time.Second))
	wantEq(t, "attempt owner", got.Attempts[0].Owner, "host-1")
	wantEq(t, "attempt duration_ms", got.Attempts[0].DurationMS, 500)
}

func testEnqueueFinishedFailed(t *testing.T, b *bundle) {
	created := at(time.Second)
	inv := ranInv("sync", "host-1", created)
	inv.MaxAttempts = 1
	c := store.Completion{
		State: fnhost.StateFailed, Error: "exit status 2",
		Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeFailed,
			Error: "exit status 2", Log: "panic: boom\n", LogTruncated: true},
	}
	got, _ := b.twins(inv, c)
	wantEq(t, "state", got.State, fnhost.StateFailed)
	wantStr(t, "error", got.Error, "exit status 2")
	wantTimePtr(t, "finished_at", got.FinishedAt, at(2*time.Second))
	wantJSON(t, "output", got.Output, nil)
	wantAttempts(t, got, fnhost.OutcomeFailed)
	wantEq(t, "attempt error", got.Attempts[0].Error, "exit status 2")
	wantEq(t, "attempt log_truncated", got.Attempts[0].LogTruncated, true)
	wantEq(t, "attempt owner (the completion's)", got.Attempts[0].Owner, "host-1")

	// A failed invocation can be retried like any other.
	r, err := b.s.Retry(b.ctx, inv.ID, at(time.Minute), 1)
	if err != nil {
		t.Fatalf("Retry: %v", err)
	}
	wantEq(t, "state after retry", r.State, fnhost.StatePending)
	wantEq(t, "max_attempts after retry", r.MaxAttempts, 2)
}

func testEnqueueFinishedRetry(t *testing.T, b *bundle) {
	created := at(time.Second)
	inv := ranInv("sync", "host-1", created)
	c := store.Completion{
		State: fnhost.StateScheduled, RunAt: at(time.Minute), Error: "timeout",
		Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeFailed,
			Error: "timeout", Log: "slow"},
	}
	got, twin := b.twins(inv, c)
	wantEq(t, "state", got.State, fnhost.StateScheduled)
	wantTime(t, "run_at", got.RunAt, at(time.Minute))
	wantStr(t, "error", got.Error, "timeout")
	wantNilTime(t, "finished_at", got.FinishedAt)
	wantEq(t, "attempt", got.Attempt, 1)
	wantEq(t, "lease_owner", got.LeaseOwner, "")
	wantAttempts(t, got, fnhost.OutcomeFailed)

	if claimed := b.claim("w", at(59*time.Second), 10); len(claimed) != 0 {
		t.Fatalf("Claim before the retry's run_at: %v", ids(claimed))
	}
	claimed := b.claim("w2", at(time.Minute), 10)
	wantSameIDs(t, "claimed at the retry's run_at", ids(claimed), []string{inv.ID, twin.ID})
	for _, inv := range claimed {
		wantEq(t, "attempt of the retry", inv.Attempt, 2)
	}
	b.succeed(inv.ID, "w2", at(time.Minute), at(61*time.Second), `"done"`)
	got = b.wantState(inv.ID, fnhost.StateSucceeded)
	wantAttempts(t, got, fnhost.OutcomeFailed, fnhost.OutcomeSucceeded)
	wantJSON(t, "output", got.Output, json.RawMessage(`"done"`))

	// A retry due at once leaves it pending.
	due := ranInv("sync", "host-1", at(2*time.Second))
	due.Completion = &store.Completion{State: fnhost.StateScheduled,
		Attempt: fnhost.Attempt{FinishedAt: at(3 * time.Second), Outcome: fnhost.OutcomeFailed, Error: "x"}}
	b.enqueue(due)
	got = b.wantState(due.ID, fnhost.StatePending)
	wantTime(t, "run_at of a retry due at once", got.RunAt, at(3*time.Second))
	wantStr(t, "error (the attempt's)", got.Error, "x")
	wantEq(t, "attempt of the retry", b.claimOne("w3", at(4*time.Second), due.ID).Attempt, 2)
}

func testEnqueueFinishedThen(t *testing.T, b *bundle) {
	created := at(time.Second)
	parent := ranInv("sync", "host-1", created)
	thenEvent := event("sync-then", 7)
	parent.Completion = &store.Completion{
		State: fnhost.StateSucceeded, Output: json.RawMessage(`{"n": 7}`), ThenEvent: thenEvent,
		Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeSucceeded},
	}
	then := thenOf(parent, "sync-then")
	grandchild := thenOf(then, "sync-then-then")
	onFailure := newInv("sync-alert", created)
	onFailure.Awaiting, onFailure.ParentID, onFailure.Continuation = true, parent.ID, fnhost.ContinueOnFailure
	other := newInv("other", created)
	b.enqueue(parent, then, grandchild, onFailure, other)

	b.wantState(parent.ID, fnhost.StateSucceeded)
	got := b.wantState(then.ID, fnhost.StatePending)
	wantJSON(t, "then child's event", got.Event, thenEvent)
	wantTime(t, "then child's run_at", got.RunAt, at(2*time.Second))
	b.wantState(grandchild.ID, fnhost.StateAwaiting)
	got = b.wantState(onFailure.ID, fnhost.StateCancelled)
	wantTimePtr(t, "on_failure child's finished_at", got.FinishedAt, at(2*time.Second))
	b.wantState(other.ID, fnhost.StatePending)
	wantSameIDs(t, "claimable", ids(b.claim("w", at(time.Minute), 10)), []string{then.ID, other.ID})

	// A failure stored in one write cancels its awaiting children.
	failed := ranInv("sync", "host-1", at(3*time.Second))
	failed.Completion = &store.Completion{State: fnhost.StateFailed, Error: "boom",
		Attempt: fnhost.Attempt{StartedAt: at(3 * time.Second), FinishedAt: at(4 * time.Second), Outcome: fnhost.OutcomeFailed}}
	child := thenOf(failed, "sync-then")
	b.enqueue(failed, child)
	got = b.wantState(child.ID, fnhost.StateCancelled)
	wantTimePtr(t, "child of a failure: finished_at", got.FinishedAt, at(4*time.Second))
}

func testEnqueueFinishedSpawn(t *testing.T, b *bundle) {
	created := at(time.Second)
	inv := ranInv("sync", "host-1", created)
	alert := newInv("alert", at(2*time.Second))
	alert.ParentID, alert.Continuation = inv.ID, fnhost.ContinueOnFailure
	msg := newInv("orders", at(2*time.Second))
	msg.RunAt = at(time.Hour)
	inv.Completion = &store.Completion{
		State: fnhost.StateFailed, Error: "bad input",
		Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeFailed, Error: "bad input"},
		Spawn:   []store.NewInvocation{alert, msg},
	}
	res := b.enqueueResults(inv)
	if res[0] != (store.EnqueueResult{ID: inv.ID}) {
		t.Fatalf("Enqueue: %+v, want %s stored", res[0], inv.ID)
	}
	b.wantState(inv.ID, fnhost.StateFailed)
	got := b.wantState(alert.ID, fnhost.StatePending)
	wantStr(t, "spawned parent_id", got.ParentID, inv.ID)
	wantEq(t, "spawned continuation", got.Continuation, fnhost.ContinueOnFailure)
	wantJSON(t, "spawned event", got.Event, alert.Event)
	b.wantState(msg.ID, fnhost.StateScheduled)
}

func testEnqueueFinishedDuplicate(t *testing.T, b *bundle) {
	first := newInv("sync", at(0))
	first.DedupKey = "req-1"
	b.enqueue(first)

	created := at(time.Second)
	dup := ranInv("sync", "host-2", created)
	dup.DedupKey = "req-1"
	spawned := newInv("alert", created)
	dup.Completion = &store.Completion{
		State: fnhost.StateSucceeded, Output: json.RawMessage(`1`), ThenEvent: event("x", 1),
		Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeSucceeded},
		Spawn:   []store.NewInvocation{spawned},
	}
	child := thenOf(dup, "sync-then")
	b.wantEnqueue("finished duplicate by dedup key", []store.NewInvocation{dup, child},
		[]store.EnqueueResult{{ID: first.ID, Duplicate: true}, {ID: child.ID, Duplicate: true}})
	b.wantNotFound(dup.ID)
	b.wantNotFound(child.ID)
	b.wantNotFound(spawned.ID)
	got := b.wantState(first.ID, fnhost.StatePending)
	wantEq(t, "attempt of the first", got.Attempt, 0)
	wantEq(t, "attempts of the first", len(got.Attempts), 0)
	wantJSON(t, "output of the first", got.Output, nil)

	// A duplicate by id: the stored invocation keeps its own outcome.
	done := ranInv("sync", "host-1", at(3*time.Second))
	done.Completion = &store.Completion{State: fnhost.StateFailed, Error: "first",
		Attempt: fnhost.Attempt{StartedAt: at(3 * time.Second), FinishedAt: at(4 * time.Second), Outcome: fnhost.OutcomeFailed}}
	b.enqueue(done)
	again := done
	again.Completion = &store.Completion{State: fnhost.StateSucceeded,
		Attempt: fnhost.Attempt{StartedAt: at(3 * time.Second), FinishedAt: at(5 * time.Second), Outcome: fnhost.OutcomeSucceeded},
		Spawn:   []store.NewInvocation{newInv("alert", at(5*time.Second))}}
	b.wantDuplicateOf("finished duplicate by id", again, done.ID)
	got = b.wantState(done.ID, fnhost.StateFailed)
	wantStr(t, "error", got.Error, "first")
	wantAttempts(t, got, fnhost.OutcomeFailed)
	b.wantNotFound(again.Completion.Spawn[0].ID)

	// A completion needs an owner, and is the invocation's own.
	bad := newInv("sync", at(6*time.Second))
	bad.Completion = &store.Completion{State: fnhost.StateSucceeded}
	if _, err := b.s.Enqueue(b.ctx, []store.NewInvocation{bad}); err == nil {
		t.Fatalf("Enqueue of a completion without an owner: no error")
	}
	bad = ranInv("sync", "host-1", at(6*time.Second))
	bad.Completion = &store.Completion{ID: fnhost.NewIDAt(base), State: fnhost.StateSucceeded}
	if _, err := b.s.Enqueue(b.ctx, []store.NewInvocation{bad}); err == nil {
		t.Fatalf("Enqueue of a completion of another id: no error")
	}
	bad.Completion = &store.Completion{Owner: "host-2", State: fnhost.StateSucceeded}
	if _, err := b.s.Enqueue(b.ctx, []store.NewInvocation{bad}); err == nil {
		t.Fatalf("Enqueue of a completion of another owner: no error")
	}
	b.wantNotFound(bad.ID)
}
