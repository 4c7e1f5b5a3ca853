// Package storetest is the conformance suite of store.Store: every implementation (SQLite,
// PostgreSQL) must pass it unchanged.
//
// The suite fixes what the store.Store comments leave open:
//   - A store never reads the wall clock for a decision: readiness, leases, rescue and
//     pruning use the times passed in (ClaimRequest.Now, now, before), the creation time
//     is NewInvocation.CreatedAt and a finish time is the completed Attempt.FinishedAt.
//   - Enqueue: RunAt zero means CreatedAt; RunAt after CreatedAt makes the invocation
//     scheduled. Enqueueing an id that is already stored is a duplicate, as a repeated
//     dedup key is: the call can be retried safely. With Owner set the invocation is
//     stored running, attempt 1, leased to Owner until LeaseUntil, started at CreatedAt;
//     a duplicate of it is not leased to the second caller.
//   - Claim returns the invocations in claim order (priority desc, run_at, id), with
//     their events and without attempts; scheduled invocations are ready when
//     run_at <= Now. The order holds across the functions of a claim; a claim never
//     takes an invocation of a function it does not ask for, however large that
//     function's backlog.
//   - Enqueue with a Completion stores the invocation as Enqueue with Owner and then
//     Complete would leave it, field for field and attempt for attempt: attempt 1
//     starts at CreatedAt unless the Completion's attempt says otherwise; the awaiting
//     children later in the same call are woken or cancelled. A duplicate applies
//     nothing of its Completion.
//   - Complete numbers the attempt it records with the invocation's attempt count; a
//     success wakes the awaiting `then` children (with ThenEvent as their event) and
//     cancels the other awaiting children; a failure or cancellation cancels every
//     awaiting descendant.
//   - Release records a released attempt from the invocation's started_at to now and
//     gives the invocation one more attempt (an interrupted handler did not fail); Rescue
//     records a lost attempt whose error says the lease expired, and gives none.
//   - Cancel of a running invocation records its attempt as cancelled.
//   - Retry sets max_attempts to attempt+extraAttempts, and makes the `then` children
//     that were cancelled with their failed or cancelled parent await it again.
//   - List: Since is inclusive, Until exclusive (both on created_at); the cursor pages
//     by id, newest first; NextCursor is empty on the last page. With MaxScan, a page
//     may be short (even empty) with a cursor when the filters an index cannot answer
//     cut it; following the cursors lists exactly what List without MaxScan lists.
//   - Counts leaves out functions with nothing in the states it counts; OldestReady is
//     the earliest run_at of the ready invocations.
//   - Throughput buckets are the minutes of the attempts' finish times; a duplicate or
//     a dropped completion adds nothing.
//   - Receipts: an enqueue whose receipt holds its version is a duplicate of the
//     receipt's invocation, even once that invocation is pruned; a duplicate (by id,
//     dedup key or receipt) leaves the receipt and the dedup key as they were. Only the
//     last version counts: going back to an earlier version is a change. Within one
//     Enqueue the earlier invocation wins. ReceiptKeys orders keys by their bytes.
//   - Enqueue skips the continuations of a duplicate that come later in the same call,
//     transitively, reporting each as Duplicate with its own id.
//   - State: GetState tells an unset key (nil) from an empty value (empty, non-nil);
//     PutState(nil) stores an empty value; CompareAndPutState with a nil old matches
//     only an unset key, with an empty old only an empty value.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// Run runs the conformance suite. open must return a new, empty store for each call and
// arrange (with t.Cleanup) for it to be closed; subtests run in parallel, each with its
// own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *bundle)
	}{
		{"EnqueueReturnsIDs", testEnqueueReturnsIDs},
		{"GetRoundTrip", testGetRoundTrip},
		{"GetNotFound", testGetNotFound},
		{"Dedup", testDedup},
		{"EnqueueSameIDTwice", testEnqueueSameIDTwice},
		{"EnqueueClaimed", testEnqueueClaimed},
		{"Scheduled", testScheduled},
		{"ClaimFields", testClaimFields},
		{"ClaimOrderAndLimit", testClaimOrderAndLimit},
		{"ClaimFilters", testClaimFilters},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ClaimBesideBacklog", testClaimBesideBacklog},
		{"ClaimOrderAcrossFunctions", testClaimOrderAcrossFunctions},
		{"Heartbeat", testHeartbeat},
		{"CompleteSucceeded", testCompleteSucceeded},
		{"CompleteRetry", testCompleteRetry},
		{"CompleteFailed", testCompleteFailed},
		{"CompleteStaleOwner", testCompleteStaleOwner},
		{"CompleteSpawn", testCompleteSpawn},
		{"ContinuationThen", testContinuationThen},
		{"ContinuationParentFails", testContinuationParentFails},
		{"CancelCascades", testCancelCascades},
		{"Release", testRelease},
		{"Rescue", testRescue},
		{"Cancel", testCancel},
		{"CancelRunning", testCancelRunning},
		{"Retry", testRetry},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"Prune", testPrune},
		{"Stats", testStats},
		{"CancelledContext", testCancelledContext},
		{"State", testState},
		{"CompareAndPutState", testCompareAndPutState},
		{"Receipts", testReceipts},
		{"ReceiptsSurvivePrune", testReceiptsSurvivePrune},
		{"ForgetReceipts", testForgetReceipts},
		{"ReceiptsLookupMany", testReceiptsLookupMany},
		{"ReceiptKeys", testReceiptKeys},
		{"ReceiptsAndDedup", testReceiptsAndDedup},
		{"ReceiptsInOneBatch", testReceiptsInOneBatch},
		{"SkipChildrenOfDuplicates", testSkipChildrenOfDuplicates},
		{"EnqueueFinishedSucceeded", testEnqueueFinishedSucceeded},
		{"EnqueueFinishedFailed", testEnqueueFinishedFailed},
		{"EnqueueFinishedRetry", testEnqueueFinishedRetry},
		{"EnqueueFinishedThen", testEnqueueFinishedThen},
		{"EnqueueFinishedSpawn", testEnqueueFinishedSpawn},
		{"EnqueueFinishedDuplicate", testEnqueueFinishedDuplicate},
		{"Servers", testServers},
		{"ListMaxScan", testListMaxScan},
		{"ListFunctionAndState", testListFunctionAndState},
		{"Counts", testCounts},
		{"Throughput", testThroughput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, setup(t, open))
		})
	}
}

func testEnqueueReturnsIDs(t *testing.T, b *bundle) {
	res, err := b.s.Enqueue(b.ctx, nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("Enqueue(nil): %v, %v; want no result and no error", res, err)
	}
	invs := []store.NewInvocation{newInv("a", at(0)), newInv("b", at(time.Millisecond)), newInv("a", at(2*time.Millisecond))}
	ids := b.enqueue(invs...)
	for i, id := range ids {
		inv := b.wantState(id, fnhost.StatePending)
		wantEq(t, "function", inv.Function, invs[i].Function)
	}
}

func testGetRoundTrip(t *testing.T, b *bundle) {
	parent := newInv("parent", at(0))
	created := at(time.Second)
	child := store.NewInvocation{
		ID:           fnhost.NewIDAt(created),
		Function:     "child",
		Trigger:      "http",
		Event:        event("child", 7),
		DedupKey:     "key-1",
		Priority:     4,
		MaxAttempts:  5,
		RunAt:        created.Add(90 * time.Second),
		Awaiting:     true,
		ParentID:     parent.ID,
		Continuation: fnhost.ContinueThen,
		CreatedAt:    created,
	}
	delayed := store.NewInvocation{
		ID: fnhost.NewIDAt(created), Function: "delayed", Trigger: "cron", Event: event("delayed", 2),
		DedupKey: "slot-1", Priority: -2, MaxAttempts: 2, RunAt: created.Add(time.Hour), CreatedAt: created,
	}
	b.enqueue(parent, child, delayed)

	got := b.get(parent.ID)
	wantEq(t, "function", got.Function, "parent")
	wantEq(t, "state", got.State, fnhost.StatePending)
	wantEq(t, "attempt", got.Attempt, 0)
	wantEq(t, "max_attempts", got.MaxAttempts, 3)
	wantEq(t, "trigger", got.Trigger, "queue")
	wantEq(t, "dedup_key", got.DedupKey, "")
	wantEq(t, "priority", got.Priority, 0)
	wantTime(t, "created_at", got.CreatedAt, parent.CreatedAt)
	wantTime(t, "run_at (zero means created_at)", got.RunAt, parent.CreatedAt)
	wantNilTime(t, "started_at", got.StartedAt)
	wantNilTime(t, "finished_at", got.FinishedAt)
	wantNilTime(t, "lease_until", got.LeaseUntil)
	wantEq(t, "lease_owner", got.LeaseOwner, "")
	wantJSON(t, "event", got.Event, parent.Event)
	wantJSON(t, "output", got.Output, nil)
	if got.Error != nil || got.ParentID != nil {
		t.Fatalf("error %v, parent_id %v: want nil", got.Error, got.ParentID)
	}
	wantEq(t, "continuation", got.Continuation, "")
	wantEq(t, "attempts", len(got.Attempts), 0)

	got = b.get(child.ID)
	wantEq(t, "function", got.Function, "child")
	wantEq(t, "state", got.State, fnhost.StateAwaiting)
	wantEq(t, "max_attempts", got.MaxAttempts, 5)
	wantEq(t, "trigger", got.Trigger, "http")
	wantEq(t, "dedup_key", got.DedupKey, "key-1")
	wantEq(t, "priority", got.Priority, 4)
	wantTime(t, "created_at", got.CreatedAt, created)
	wantTime(t, "run_at", got.RunAt, child.RunAt)
	wantStr(t, "parent_id", got.ParentID, parent.ID)
	wantEq(t, "continuation", got.Continuation, fnhost.ContinueThen)
	wantJSON(t, "event", got.Event, child.Event)

	got = b.get(delayed.ID)
	wantEq(t, "state", got.State, fnhost.StateScheduled)
	wantEq(t, "priority", got.Priority, -2)
	wantEq(t, "dedup_key", got.DedupKey, "slot-1")
	wantTime(t, "run_at", got.RunAt, delayed.RunAt)

	// The event survives byte for byte as JSON, including nested data.
	var ev fnhost.Event
	if err := json.Unmarshal(got.Event, &ev); err != nil {
		t.Fatalf("event does not decode: %v", err)
	}
	wantEq(t, "event id", ev.ID, "ev-delayed-2")
	wantJSON(t, "event data", ev.Data, json.RawMessage(`{"n": 2}`))
}

func testGetNotFound(t *testing.T, b *bundle) {
	b.wantNotFound(fnhost.NewIDAt(base))
	b.enqueue(newInv("a", at(0)))
	b.wantNotFound(fnhost.NewIDAt(base))
}

func testDedup(t *testing.T, b *bundle) {
	first := newInv("f", at(0))
	first.DedupKey = "k"
	b.enqueue(first)

	again := newInv("f", at(time.Second))
	again.DedupKey = "k"
	other := newInv("g", at(time.Second))
	other.DedupKey = "k"
	plain := newInv("f", at(time.Second))
	res, err := b.s.Enqueue(b.ctx, []store.NewInvocation{again, other, plain})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	want := []store.EnqueueResult{{ID: first.ID, Duplicate: true}, {ID: other.ID}, {ID: plain.ID}}
	if len(res) != len(want) {
		t.Fatalf("Enqueue: %d results, want %d", len(res), len(want))
	}
	for i := range want {
		if res[i] != want[i] {
			t.Fatalf("result %d: %+v, want %+v", i, res[i], want[i])
		}
	}
	b.wantNotFound(again.ID)
	b.wantState(other.ID, fnhost.StatePending)

	// Duplicates inside one batch: the first wins.
	x := newInv("h", at(2*time.Second))
	x.DedupKey = "same"
	y := newInv("h", at(2*time.Second))
	y.DedupKey = "same"
	z := newInv("h", at(2*time.Second))
	z.DedupKey = "different"
	res, err = b.s.Enqueue(b.ctx, []store.NewInvocation{x, y, z})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	want = []store.EnqueueResult{{ID: x.ID}, {ID: x.ID, Duplicate: true}, {ID: z.ID}}
	for i := range want {
		if res[i] != want[i] {
			t.Fatalf("batch result %d: %+v, want %+v", i, res[i], want[i])
		}
	}
	b.wantNotFound(y.ID)

	// The dedup key holds whatever the first invocation's state.
	claimed := b.claim("w", at(time.Minute), 10)
	wantEq(t, "claimed", len(claimed), 5)
	for _, inv := range claimed {
		b.succeed(inv.ID, "w", at(time.Minute), at(2*time.Minute), `1`)
	}
	res, err = b.s.Enqueue(b.ctx, []store.NewInvocation{again})
	if err != nil || len(res) != 1 || res[0] != (store.EnqueueResult{ID: first.ID, Duplicate: true}) {
		t.Fatalf("Enqueue after success: %+v, %v; want duplicate of %s", res, err, first.ID)
	}
}

func testEnqueueSameIDTwice(t *testing.T, b *bundle) {
	inv := newInv("f", at(0))
	b.enqueue(inv)
	second := inv
	second.Event = event("f", 99)
	res, err := b.s.Enqueue(b.ctx, []store.NewInvocation{second})
	if err != nil {
		t.Fatalf("Enqueue of a stored id: %v", err)
	}
	if len(res) != 1 || res[0] != (store.EnqueueResult{ID: inv.ID, Duplicate: true}) {
		t.Fatalf("Enqueue of a stored id: %+v, want duplicate of %s", res, inv.ID)
	}
	wantJSON(t, "event", b.get(inv.ID).Event, inv.Event)
}

func testEnqueueClaimed(t *testing.T, b *bundle) {
	created := at(time.Second)
	inv := newInv("sync", created)
	inv.DedupKey = "req-1"
	inv.Owner, inv.LeaseUntil = "host-1", created.Add(30*time.Second)
	other := newInv("async", created)
	b.enqueue(inv, other)

	got := b.wantState(inv.ID, fnhost.StateRunning)
	wantEq(t, "attempt", got.Attempt, 1)
	wantEq(t, "lease_owner", got.LeaseOwner, "host-1")
	wantTimePtr(t, "lease_until", got.LeaseUntil, created.Add(30*time.Second))
	wantTimePtr(t, "started_at", got.StartedAt, created)
	wantJSON(t, "event", got.Event, inv.Event)
	wantIDs(t, "claimable", ids(b.claim("w", at(time.Minute), 10)), []string{other.ID})

	// A duplicate of it is not claimed for the second caller.
	dup := newInv("sync", at(2*time.Second))
	dup.DedupKey = "req-1"
	dup.Owner, dup.LeaseUntil = "host-2", at(time.Hour)
	res, err := b.s.Enqueue(b.ctx, []store.NewInvocation{dup})
	if err != nil || len(res) != 1 || res[0] != (store.EnqueueResult{ID: inv.ID, Duplicate: true}) {
		t.Fatalf("Enqueue of a duplicate: %+v, %v; want duplicate of %s", res, err, inv.ID)
	}
	wantEq(t, "owner after duplicate", b.get(inv.ID).LeaseOwner, "host-1")

	lost, err := b.s.Heartbeat(b.ctx, "host-1", []string{inv.ID}, at(time.Minute))
	if err != nil || len(lost) != 0 {
		t.Fatalf("Heartbeat: %v, %v", lost, err)
	}
	b.succeed(inv.ID, "host-1", created, at(3*time.Second), `{"status": 200}`)
	got = b.wantState(inv.ID, fnhost.StateSucceeded)
	wantAttempts(t, got, fnhost.OutcomeSucceeded)
	wantTime(t, "attempt started_at", got.Attempts[0].StartedAt, created)
}

func testScheduled(t *testing.T, b *bundle) {
	inv := newInv("later", at(0))
	inv.RunAt = at(time.Minute)
	b.enqueue(inv)
	b.wantState(inv.ID, fnhost.StateScheduled)

	if got := b.claim("w", at(59*time.Second), 10); len(got) != 0 {
		t.Fatalf("Claim before run_at: %v, want none", ids(got))
	}
	st, err := b.s.Stats(b.ctx, at(59*time.Second))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	wantEq(t, "ready before run_at", st.Ready, 0)
	st, err = b.s.Stats(b.ctx, at(time.Minute))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	wantEq(t, "ready at run_at", st.Ready, 1)

	got := b.claimOne("w", at(time.Minute), inv.ID)
	wantEq(t, "attempt", got.Attempt, 1)
	wantTime(t, "run_at", got.RunAt, inv.RunAt)
}

func testClaimFields(t *testing.T, b *bundle) {
	inv := newInv("f", at(0))
	inv.Event = event("f", 42)
	b.enqueue(inv)
	now := at(3 * time.Second)
	lease := now.Add(30 * time.Second)
	got := b.claimReq(store.ClaimRequest{Owner: "host-1", Now: now, LeaseUntil: lease, Limit: 5})
	if len(got) != 1 {
		t.Fatalf("Claim: %v, want [%s]", ids(got), inv.ID)
	}
	c := got[0]
	wantEq(t, "id", c.ID, inv.ID)
	wantEq(t, "state", c.State, fnhost.StateRunning)
	wantEq(t, "attempt", c.Attempt, 1)
	wantEq(t, "max_attempts", c.MaxAttempts, 3)
	wantEq(t, "function", c.Function, "f")
	wantEq(t, "trigger", c.Trigger, "queue")
	wantEq(t, "lease_owner", c.LeaseOwner, "host-1")
	wantTimePtr(t, "lease_until", c.LeaseUntil, lease)
	wantTimePtr(t, "started_at", c.StartedAt, now)
	wantTime(t, "created_at", c.CreatedAt, inv.CreatedAt)
	wantJSON(t, "event", c.Event, inv.Event)
	wantEq(t, "attempts", len(c.Attempts), 0)

	g := b.wantState(inv.ID, fnhost.StateRunning)
	wantEq(t, "attempt", g.Attempt, 1)
	wantEq(t, "lease_owner", g.LeaseOwner, "host-1")
	wantTimePtr(t, "lease_until", g.LeaseUntil, lease)
	wantTimePtr(t, "started_at", g.StartedAt, now)
	wantNilTime(t, "finished_at", g.FinishedAt)

	if again := b.claim("host-2", at(time.Hour), 5); len(again) != 0 {
		t.Fatalf("second Claim: %v, want none (already running)", ids(again))
	}
	if none := b.claimReq(store.ClaimRequest{Owner: "host-2", Now: now, LeaseUntil: lease, Limit: 0}); len(none) != 0 {
		t.Fatalf("Claim with limit 0: %v, want none", ids(none))
	}
}

func testClaimOrderAndLimit(t *testing.T, b *bundle) {
	mk := func(name string, prio int, runAt time.Duration) store.NewInvocation {
		inv := newInv(name, at(0))
		inv.Priority = prio
		inv.RunAt = at(runAt)
		return inv
	}
	p0y := mk("p0y", 0, 0)
	p0x := mk("p0x", 0, 0) // created after p0y with the same run_at: larger id
	p1b := mk("p1b", 1, 2*time.Second)
	p1a := mk("p1a", 1, time.Second)
	p5 := mk("p5", 5, 3*time.Second)
	neg := mk("neg", -1, 0)
	future := mk("future", 9, time.Hour)
	b.enqueue(p0y, p0x, p1b, p1a, p5, neg, future)
	now := at(10 * time.Second)

	first := b.claim("w", now, 2)
	wantIDs(t, "first claim (limit 2)", ids(first), []string{p5.ID, p1a.ID})
	rest := b.claim("w", now, 10)
	wantIDs(t, "second claim", ids(rest), []string{p1b.ID, p0y.ID, p0x.ID, neg.ID})
	b.wantState(future.ID, fnhost.StateScheduled)
	wantIDs(t, "claim at run_at of the future one", ids(b.claim("w", at(time.Hour), 10)), []string{future.ID})
}

func testClaimFilters(t *testing.T, b *bundle) {
	a := b.enqueueN("a", 3, at(0))
	bb := b.enqueueN("b", 3, at(time.Second))
	c := b.enqueueN("c", 3, at(2*time.Second))
	now := at(time.Minute)
	req := store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 100}

	only := req
	only.Functions = []string{"b"}
	wantIDs(t, "Functions [b]", ids(b.claimReq(only)), bb)

	excl := req
	excl.Exclude = []string{"a"}
	wantIDs(t, "Exclude [a]", ids(b.claimReq(excl)), c)

	both := req
	both.Functions = []string{"a", "c"}
	both.Exclude = []string{"a"}
	if got := b.claimReq(both); len(got) != 0 {
		t.Fatalf("Functions [a c] Exclude [a]: %v, want none", ids(got))
	}
	wantIDs(t, "no filter", ids(b.claimReq(req)), a)
}

func testClaimConcurrent(t *testing.T, b *bundle) {
	const n = 1000
	var want []string
	for i := 0; i < n; i += 250 {
		want = append(want, b.enqueueN("f", 250, at(time.Duration(i)*time.Millisecond))...)
	}
	const workers = 8
	var (
		mu    sync.Mutex
		count = map[string]int{}
		wg    sync.WaitGroup
		errs  = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("worker-%d", w)
			for {
				now := at(time.Hour)
				got, err := b.s.Claim(b.ctx, store.ClaimRequest{Owner: owner, Now: now, LeaseUntil: now.Add(time.Minute), Limit: 7})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, inv := range got {
					count[inv.ID]++
					if inv.LeaseOwner != owner {
						errs <- fmt.Errorf("claimed %s with lease owner %q, want %q", inv.ID, inv.LeaseOwner, owner)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Claim: %v", err)
	}
	if len(count) != n {
		t.Fatalf("claimed %d distinct invocations, want %d", len(count), n)
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Fatalf("invocation %s claimed %d times, want once", id, count[id])
		}
	}
}

func testHeartbeat(t *testing.T, b *bundle) {
	ids3 := b.enqueueN("f", 3, at(0))
	x, y, z := ids3[0], ids3[1], ids3[2]
	now := at(time.Second)
	b.claimReq(store.ClaimRequest{Owner: "A", Now: now, LeaseUntil: at(time.Minute), Limit: 2})
	b.claimReq(store.ClaimRequest{Owner: "B", Now: now, LeaseUntil: at(time.Minute), Limit: 1})
	b.wantState(z, fnhost.StateRunning)
	unknown := fnhost.NewIDAt(base)

	lost, err := b.s.Heartbeat(b.ctx, "A", []string{x, y, z, unknown}, at(2*time.Minute))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	wantSameIDs(t, "lost (owned by B, unknown)", lost, []string{z, unknown})
	wantTimePtr(t, "lease_until of x", b.get(x).LeaseUntil, at(2*time.Minute))
	wantTimePtr(t, "lease_until of z (B's, untouched)", b.get(z).LeaseUntil, at(time.Minute))

	if _, err := b.s.Cancel(b.ctx, y, at(70*time.Second)); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	lost, err = b.s.Heartbeat(b.ctx, "A", []string{x, y}, at(3*time.Minute))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	wantIDs(t, "lost after cancel", lost, []string{y})

	n, err := b.s.Rescue(b.ctx, at(4*time.Minute))
	if err != nil {
		t.Fatalf("Rescue: %v", err)
	}
	wantEq(t, "rescued (x and z)", n, 2)
	lost, err = b.s.Heartbeat(b.ctx, "A", []string{x}, at(5*time.Minute))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	wantIDs(t, "lost after rescue", lost, []string{x})
	b.wantState(x, fnhost.StatePending)

	lost, err = b.s.Heartbeat(b.ctx, "A", nil, at(5*time.Minute))
	if err != nil || len(lost) != 0 {
		t.Fatalf("Heartbeat of nothing: %v, %v", lost, err)
	}
}

func testCompleteSucceeded(t *testing.T, b *bundle) {
	id := b.enqueue(newInv("f", at(0)))[0]
	started := at(time.Second)
	b.claimOne("host-1", started, id)
	finished := at(1500 * time.Millisecond)
	dropped := b.complete(store.Completion{
		ID: id, Owner: "host-1", State: fnhost.StateSucceeded, Output: json.RawMessage(`{"ok": true, "n": [1, 2]}`),
		Attempt: fnhost.Attempt{
			Number: 1, StartedAt: started, FinishedAt: finished, DurationMS: 500,
			Outcome: fnhost.OutcomeSucceeded, Log: "line 1\nline 2\n", LogTruncated: true, Owner: "host-1",
		},
	})
	if len(dropped) != 0 {
		t.Fatalf("Complete dropped %v", dropped)
	}
	inv := b.wantState(id, fnhost.StateSucceeded)
	wantJSON(t, "output", inv.Output, json.RawMessage(`{"ok": true, "n": [1, 2]}`))
	wantTimePtr(t, "finished_at", inv.FinishedAt, finished)
	wantTimePtr(t, "started_at", inv.StartedAt, started)
	wantEq(t, "attempt", inv.Attempt, 1)
	wantEq(t, "lease_owner", inv.LeaseOwner, "")
	wantNilTime(t, "lease_until", inv.LeaseUntil)
	if inv.Error != nil {
		t.Fatalf("error %q, want nil", *inv.Error)
	}
	wantAttempts(t, inv, fnhost.OutcomeSucceeded)
	a := inv.Attempts[0]
	wantTime(t, "attempt started_at", a.StartedAt, started)
	wantTime(t, "attempt finished_at", a.FinishedAt, finished)
	wantEq(t, "attempt duration_ms", a.DurationMS, 500)
	wantEq(t, "attempt error", a.Error, "")
	wantEq(t, "attempt log", a.Log, "line 1\nline 2\n")
	wantEq(t, "attempt log_truncated", a.LogTruncated, true)
	wantEq(t, "attempt owner", a.Owner, "host-1")

	// A second completion of a finished invocation is dropped.
	dropped = b.complete(store.Completion{ID: id, Owner: "host-1", State: fnhost.StateFailed,
		Attempt: fnhost.Attempt{StartedAt: started, FinishedAt: at(time.Hour), Outcome: fnhost.OutcomeFailed}})
	wantIDs(t, "dropped", dropped, []string{id})
	inv = b.wantState(id, fnhost.StateSucceeded)
	wantAttempts(t, inv, fnhost.OutcomeSucceeded)
}

func testCompleteRetry(t *testing.T, b *bundle) {
	id := b.enqueue(newInv("f", at(0)))[0]
	b.claimOne("w", at(time.Second), id)
	dropped := b.complete(store.Completion{
		ID: id, Owner: "w", State: fnhost.StateScheduled, RunAt: at(time.Minute), Error: "boom",
		Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeFailed, Error: "boom", Log: "trying", Owner: "w"},
	})
	if len(dropped) != 0 {
		t.Fatalf("Complete dropped %v", dropped)
	}
	inv := b.wantState(id, fnhost.StateScheduled)
	wantTime(t, "run_at", inv.RunAt, at(time.Minute))
	wantStr(t, "error", inv.Error, "boom")
	wantNilTime(t, "finished_at", inv.FinishedAt)
	wantEq(t, "lease_owner", inv.LeaseOwner, "")
	wantAttempts(t, inv, fnhost.OutcomeFailed)
	wantEq(t, "attempt error", inv.Attempts[0].Error, "boom")
	wantEq(t, "attempt log", inv.Attempts[0].Log, "trying")

	if got := b.claim("w", at(59*time.Second), 10); len(got) != 0 {
		t.Fatalf("Claim before the retry's run_at: %v", ids(got))
	}
	c := b.claimOne("w2", at(time.Minute), id)
	wantEq(t, "attempt", c.Attempt, 2)
	b.succeed(id, "w2", at(time.Minute), at(61*time.Second), `"done"`)
	inv = b.wantState(id, fnhost.StateSucceeded)
	wantAttempts(t, inv, fnhost.OutcomeFailed, fnhost.OutcomeSucceeded)
	wantEq(t, "second attempt owner", inv.Attempts[1].Owner, "w2")
	wantTime(t, "second attempt started_at", inv.Attempts[1].StartedAt, at(time.Minute))
	wantJSON(t, "output", inv.Output, json.RawMessage(`"done"`))
}

func testCompleteFailed(t *testing.T, b *bundle) {
	id := b.enqueue(newInv("f", at(0)))[0]
	b.claimOne("w", at(time.Second), id)
	b.fail(id, "w", at(time.Second), at(3*time.Second), "exit status 1")
	inv := b.wantState(id, fnhost.StateFailed)
	wantStr(t, "error", inv.Error, "exit status 1")
	wantTimePtr(t, "finished_at", inv.FinishedAt, at(3*time.Second))
	wantAttempts(t, inv, fnhost.OutcomeFailed)
	wantEq(t, "attempt error", inv.Attempts[0].Error, "exit status 1")
	if got := b.claim("w", at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("Claim of a failed invocation: %v", ids(got))
	}
}

func testCompleteStaleOwner(t *testing.T, b *bundle) {
	ids2 := b.enqueueN("f", 2, at(0))
	id, other := ids2[0], ids2[1]
	b.claimReq(store.ClaimRequest{Owner: "A", Now: at(time.Second), LeaseUntil: at(10 * time.Second), Limit: 1})
	n, err := b.s.Rescue(b.ctx, at(20*time.Second))
	if err != nil || n != 1 {
		t.Fatalf("Rescue: %d, %v; want 1", n, err)
	}
	b.claimReq(store.ClaimRequest{Owner: "B", Now: at(21 * time.Second), LeaseUntil: at(time.Minute), Limit: 1})
	inv := b.wantState(id, fnhost.StateRunning)
	wantEq(t, "owner", inv.LeaseOwner, "B")

	// A's late completion, batched with one for an id it never held, is dropped.
	unknown := fnhost.NewIDAt(base)
	dropped := b.complete(
		store.Completion{ID: id, Owner: "A", State: fnhost.StateSucceeded, Output: json.RawMessage(`1`),
			Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(25 * time.Second), Outcome: fnhost.OutcomeSucceeded}},
		store.Completion{ID: unknown, Owner: "A", State: fnhost.StateSucceeded,
			Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(25 * time.Second), Outcome: fnhost.OutcomeSucceeded}},
		store.Completion{ID: other, Owner: "A", State: fnhost.StateSucceeded,
			Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(25 * time.Second), Outcome: fnhost.OutcomeSucceeded}},
	)
	wantSameIDs(t, "dropped", dropped, []string{id, unknown, other})
	inv = b.wantState(id, fnhost.StateRunning)
	wantEq(t, "owner", inv.LeaseOwner, "B")
	wantEq(t, "attempt", inv.Attempt, 2)
	wantAttempts(t, inv, fnhost.OutcomeLost)
	b.wantState(other, fnhost.StatePending)

	b.succeed(id, "B", at(21*time.Second), at(30*time.Second), `2`)
	inv = b.wantState(id, fnhost.StateSucceeded)
	wantAttempts(t, inv, fnhost.OutcomeLost, fnhost.OutcomeSucceeded)
	wantJSON(t, "output", inv.Output, json.RawMessage(`2`))
}

func testCompleteSpawn(t *testing.T, b *bundle) {
	id := b.enqueue(newInv("f", at(0)))[0]
	b.claimOne("w", at(time.Second), id)
	alert := newInv("alert", at(2*time.Second))
	alert.ParentID = id
	alert.Continuation = fnhost.ContinueOnFailure
	msg := newInv("orders", at(2*time.Second))
	msg.RunAt = at(time.Hour)
	dropped := b.complete(store.Completion{
		ID: id, Owner: "w", State: fnhost.StateFailed, Error: "bad input",
		Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeFailed, Error: "bad input"},
		Spawn:   []store.NewInvocation{alert, msg},
	})
	if len(dropped) != 0 {
		t.Fatalf("Complete dropped %v", dropped)
	}
	b.wantState(id, fnhost.StateFailed)
	got := b.wantState(alert.ID, fnhost.StatePending)
	wantStr(t, "spawned parent_id", got.ParentID, id)
	wantEq(t, "spawned continuation", got.Continuation, fnhost.ContinueOnFailure)
	wantJSON(t, "spawned event", got.Event, alert.Event)
	b.wantState(msg.ID, fnhost.StateScheduled)

	// A dropped completion spawns nothing.
	late := newInv("alert", at(3*time.Second))
	dropped = b.complete(store.Completion{
		ID: id, Owner: "w", State: fnhost.StateFailed,
		Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(3 * time.Second), Outcome: fnhost.OutcomeFailed},
		Spawn:   []store.NewInvocation{late},
	})
	wantIDs(t, "dropped", dropped, []string{id})
	b.wantNotFound(late.ID)
}

// enqueueChain stores a parent, an awaiting `then` child and an awaiting `then`
// grandchild of that child.
func (b *bundle) enqueueChain(fn string, created time.Time) (parent, child, grandchild store.NewInvocation) {
	parent = newInv(fn, created)
	child = newInv(fn+"-then", created)
	child.Awaiting, child.ParentID, child.Continuation = true, parent.ID, fnhost.ContinueThen
	grandchild = newInv(fn+"-then-then", created)
	grandchild.Awaiting, grandchild.ParentID, grandchild.Continuation = true, child.ID, fnhost.ContinueThen
	b.enqueue(parent, child, grandchild)
	return parent, child, grandchild
}

func testContinuationThen(t *testing.T, b *bundle) {
	parent, child, grandchild := b.enqueueChain("p", at(0))
	b.wantState(child.ID, fnhost.StateAwaiting)
	b.claimOne("w", at(time.Second), parent.ID) // the children are not claimable
	if got := b.claim("w", at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("Claim while the parent runs: %v", ids(got))
	}

	thenEvent := event("p-then", 100)
	dropped := b.complete(store.Completion{
		ID: parent.ID, Owner: "w", State: fnhost.StateSucceeded, Output: json.RawMessage(`{"n": 100}`), ThenEvent: thenEvent,
		Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(2 * time.Second), Outcome: fnhost.OutcomeSucceeded},
	})
	if len(dropped) != 0 {
		t.Fatalf("Complete dropped %v", dropped)
	}
	got := b.wantState(child.ID, fnhost.StatePending)
	wantJSON(t, "child event", got.Event, thenEvent)
	b.wantState(grandchild.ID, fnhost.StateAwaiting)

	c := b.claimOne("w", at(3*time.Second), child.ID)
	wantJSON(t, "claimed child event", c.Event, thenEvent)
	b.succeed(child.ID, "w", at(3*time.Second), at(4*time.Second), `"x"`)
	b.wantState(grandchild.ID, fnhost.StatePending)
	wantJSON(t, "grandchild keeps its event without a ThenEvent", b.get(grandchild.ID).Event, grandchild.Event)
}

func testContinuationParentFails(t *testing.T, b *bundle) {
	parent, child, grandchild := b.enqueueChain("p", at(0))
	b.claimOne("w", at(time.Second), parent.ID)
	b.fail(parent.ID, "w", at(time.Second), at(2*time.Second), "boom")
	got := b.wantState(child.ID, fnhost.StateCancelled)
	wantTimePtr(t, "child finished_at", got.FinishedAt, at(2*time.Second))
	b.wantState(grandchild.ID, fnhost.StateCancelled)
	if got := b.claim("w", at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("Claim after the parent failed: %v", ids(got))
	}

	inv, err := b.s.Retry(b.ctx, parent.ID, at(time.Minute), 1)
	if err != nil {
		t.Fatalf("Retry: %v", err)
	}
	wantEq(t, "retried parent state", inv.State, fnhost.StatePending)
	got = b.wantState(child.ID, fnhost.StateAwaiting)
	wantNilTime(t, "child finished_at after retry", got.FinishedAt)
	b.wantState(grandchild.ID, fnhost.StateAwaiting)

	b.claimOne("w", at(time.Minute), parent.ID)
	thenEvent := event("p-then", 5)
	b.complete(store.Completion{
		ID: parent.ID, Owner: "w", State: fnhost.StateSucceeded, ThenEvent: thenEvent,
		Attempt: fnhost.Attempt{StartedAt: at(time.Minute), FinishedAt: at(61 * time.Second), Outcome: fnhost.OutcomeSucceeded},
	})
	got = b.wantState(child.ID, fnhost.StatePending)
	wantJSON(t, "child event", got.Event, thenEvent)
}

func testCancelCascades(t *testing.T, b *bundle) {
	parent, child, grandchild := b.enqueueChain("p", at(0))
	onFail := newInv("p-alert", at(0))
	onFail.Awaiting, onFail.ParentID, onFail.Continuation = true, parent.ID, fnhost.ContinueOnFailure
	b.enqueue(onFail)
	unrelated := b.enqueue(newInv("q", at(0)))[0]

	inv, err := b.s.Cancel(b.ctx, parent.ID, at(time.Second))
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	wantEq(t, "state", inv.State, fnhost.StateCancelled)
	for _, id := range []string{child.ID, grandchild.ID, onFail.ID} {
		got := b.wantState(id, fnhost.StateCancelled)
		wantTimePtr(t, "finished_at", got.FinishedAt, at(time.Second))
	}
	b.wantState(unrelated, fnhost.StatePending)

	// A succeeding parent cancels its awaiting children that are not `then`.
	p2 := newInv("p2", at(0))
	alert := newInv("p2-alert", at(0))
	alert.Awaiting, alert.ParentID, alert.Continuation = true, p2.ID, fnhost.ContinueOnFailure
	then := newInv("p2-then", at(0))
	then.Awaiting, then.ParentID, then.Continuation = true, p2.ID, fnhost.ContinueThen
	b.enqueue(p2, alert, then)
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Minute), Limit: 10, Functions: []string{"p2"}})
	b.succeed(p2.ID, "w", at(time.Second), at(2*time.Second), `null`)
	b.wantState(then.ID, fnhost.StatePending)
	b.wantState(alert.ID, fnhost.StateCancelled)
}

func testRelease(t *testing.T, b *bundle) {
	ids2 := b.enqueueN("f", 2, at(0))
	id, other := ids2[0], ids2[1]
	claimedAt := at(time.Second)
	b.claimReq(store.ClaimRequest{Owner: "A", Now: claimedAt, LeaseUntil: at(time.Minute), Limit: 1})
	b.claimReq(store.ClaimRequest{Owner: "B", Now: claimedAt, LeaseUntil: at(time.Minute), Limit: 1})

	err := b.s.Release(b.ctx, "A", map[string]fnhost.Attempt{
		id:    {Number: 1, StartedAt: claimedAt, Log: "half way", Outcome: fnhost.OutcomeReleased},
		other: {Number: 1, StartedAt: claimedAt},
	}, at(5*time.Second))
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	inv := b.wantState(id, fnhost.StatePending)
	wantEq(t, "lease_owner", inv.LeaseOwner, "")
	wantNilTime(t, "lease_until", inv.LeaseUntil)
	wantEq(t, "attempt", inv.Attempt, 1)
	wantEq(t, "max_attempts (a released attempt is given back)", inv.MaxAttempts, 4)
	wantAttempts(t, inv, fnhost.OutcomeReleased)
	a := inv.Attempts[0]
	wantTime(t, "attempt started_at", a.StartedAt, claimedAt)
	wantTime(t, "attempt finished_at", a.FinishedAt, at(5*time.Second))
	wantEq(t, "attempt log", a.Log, "half way")
	wantEq(t, "attempt owner", a.Owner, "A")

	// B's invocation is not A's to release.
	got := b.wantState(other, fnhost.StateRunning)
	wantEq(t, "other owner", got.LeaseOwner, "B")
	wantEq(t, "other attempts", len(got.Attempts), 0)

	c := b.claimOne("C", at(6*time.Second), id)
	wantEq(t, "attempt after release", c.Attempt, 2)
}

func testRescue(t *testing.T, b *bundle) {
	ids2 := b.enqueueN("f", 2, at(0))
	x, y := ids2[0], ids2[1]
	b.claimReq(store.ClaimRequest{Owner: "A", Now: at(time.Second), LeaseUntil: at(time.Minute), Limit: 1})
	b.claimReq(store.ClaimRequest{Owner: "B", Now: at(2 * time.Second), LeaseUntil: at(5 * time.Minute), Limit: 1})

	n, err := b.s.Rescue(b.ctx, at(time.Minute-time.Millisecond))
	if err != nil || n != 0 {
		t.Fatalf("Rescue before expiry: %d, %v; want 0", n, err)
	}
	n, err = b.s.Rescue(b.ctx, at(2*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Rescue: %d, %v; want 1", n, err)
	}
	inv := b.wantState(x, fnhost.StatePending)
	wantEq(t, "lease_owner", inv.LeaseOwner, "")
	wantNilTime(t, "lease_until", inv.LeaseUntil)
	wantEq(t, "max_attempts (a lost attempt counts)", inv.MaxAttempts, 3)
	wantAttempts(t, inv, fnhost.OutcomeLost)
	a := inv.Attempts[0]
	wantTime(t, "attempt started_at", a.StartedAt, at(time.Second))
	wantTime(t, "attempt finished_at", a.FinishedAt, at(2*time.Minute))
	wantEq(t, "attempt owner", a.Owner, "A")
	if !strings.Contains(a.Error, "lease expired") {
		t.Fatalf("attempt error %q, want it to say the lease expired", a.Error)
	}
	got := b.wantState(y, fnhost.StateRunning)
	wantEq(t, "y owner", got.LeaseOwner, "B")

	n, err = b.s.Rescue(b.ctx, at(2*time.Minute))
	if err != nil || n != 0 {
		t.Fatalf("second Rescue: %d, %v; want 0", n, err)
	}
	c := b.claimOne("C", at(3*time.Minute), x)
	wantEq(t, "attempt after rescue", c.Attempt, 2)
}

func testCancel(t *testing.T, b *bundle) {
	pending := newInv("f", at(0))
	scheduled := newInv("f", at(0))
	scheduled.RunAt = at(time.Hour)
	parent := newInv("f", at(0))
	awaiting := newInv("g", at(0))
	awaiting.Awaiting, awaiting.ParentID, awaiting.Continuation = true, parent.ID, fnhost.ContinueThen
	b.enqueue(pending, scheduled, parent, awaiting)

	for _, id := range []string{pending.ID, scheduled.ID, awaiting.ID} {
		inv, err := b.s.Cancel(b.ctx, id, at(time.Second))
		if err != nil {
			t.Fatalf("Cancel(%s): %v", id, err)
		}
		wantEq(t, "returned id", inv.ID, id)
		wantEq(t, "returned state", inv.State, fnhost.StateCancelled)
		got := b.wantState(id, fnhost.StateCancelled)
		wantTimePtr(t, "finished_at", got.FinishedAt, at(time.Second))
	}
	b.wantState(parent.ID, fnhost.StatePending)
	wantIDs(t, "claimable after cancels", ids(b.claim("w", at(2*time.Hour), 10)), []string{parent.ID})

	_, err := b.s.Cancel(b.ctx, pending.ID, at(2*time.Second))
	wantErr(t, "Cancel of a cancelled invocation", err, store.ErrConflict)
	b.succeed(parent.ID, "w", at(2*time.Hour), at(3*time.Hour), `1`)
	_, err = b.s.Cancel(b.ctx, parent.ID, at(4*time.Hour))
	wantErr(t, "Cancel of a succeeded invocation", err, store.ErrConflict)
	_, err = b.s.Cancel(b.ctx, fnhost.NewIDAt(base), at(time.Second))
	wantErr(t, "Cancel of an unknown id", err, store.ErrNotFound)
}

func testCancelRunning(t *testing.T, b *bundle) {
	id := b.enqueue(newInv("f", at(0)))[0]
	b.claimOne("A", at(time.Second), id)
	inv, err := b.s.Cancel(b.ctx, id, at(3*time.Second))
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	wantEq(t, "state", inv.State, fnhost.StateCancelled)
	lost, err := b.s.Heartbeat(b.ctx, "A", []string{id}, at(time.Minute))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	wantIDs(t, "lost", lost, []string{id})
	dropped := b.complete(store.Completion{ID: id, Owner: "A", State: fnhost.StateSucceeded, Output: json.RawMessage(`1`),
		Attempt: fnhost.Attempt{StartedAt: at(time.Second), FinishedAt: at(4 * time.Second), Outcome: fnhost.OutcomeSucceeded}})
	wantIDs(t, "dropped", dropped, []string{id})
	got := b.wantState(id, fnhost.StateCancelled)
	wantTimePtr(t, "finished_at", got.FinishedAt, at(3*time.Second))
	wantJSON(t, "output", got.Output, nil)
	wantEq(t, "lease_owner", got.LeaseOwner, "")
	wantAttempts(t, got, fnhost.OutcomeCancelled)
	wantTime(t, "attempt started_at", got.Attempts[0].StartedAt, at(time.Second))
	wantTime(t, "attempt finished_at", got.Attempts[0].FinishedAt, at(3*time.Second))
	if n, err := b.s.Rescue(b.ctx, at(time.Hour)); err != nil || n != 0 {
		t.Fatalf("Rescue after cancel: %d, %v; want 0", n, err)
	}
}

func testRetry(t *testing.T, b *bundle) {
	ids4 := b.enqueueN("f", 4, at(0))
	failed, cancelled, succeeded, running := ids4[0], ids4[1], ids4[2], ids4[3]
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 1})
	b.fail(failed, "w", at(time.Second), at(2*time.Second), "boom")
	if _, err := b.s.Cancel(b.ctx, cancelled, at(2*time.Second)); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(3 * time.Second), LeaseUntil: at(time.Hour), Limit: 1, Functions: []string{"f"}})
	b.wantState(succeeded, fnhost.StateRunning)
	b.succeed(succeeded, "w", at(3*time.Second), at(4*time.Second), `1`)
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(5 * time.Second), LeaseUntil: at(time.Hour), Limit: 1})
	b.wantState(running, fnhost.StateRunning)

	for _, tc := range []struct {
		id      string
		attempt int
		extra   int
	}{{failed, 1, 3}, {cancelled, 0, 2}, {succeeded, 1, 1}} {
		inv, err := b.s.Retry(b.ctx, tc.id, at(time.Minute), tc.extra)
		if err != nil {
			t.Fatalf("Retry(%s): %v", tc.id, err)
		}
		wantEq(t, "returned state", inv.State, fnhost.StatePending)
		got := b.wantState(tc.id, fnhost.StatePending)
		wantEq(t, "attempt", got.Attempt, tc.attempt)
		wantEq(t, "max_attempts", got.MaxAttempts, tc.attempt+tc.extra)
		wantNilTime(t, "finished_at", got.FinishedAt)
		wantEq(t, "lease_owner", got.LeaseOwner, "")
	}
	_, err := b.s.Retry(b.ctx, running, at(time.Minute), 1)
	wantErr(t, "Retry of a running invocation", err, store.ErrConflict)
	_, err = b.s.Retry(b.ctx, failed, at(time.Minute), 1)
	wantErr(t, "Retry of a pending invocation", err, store.ErrConflict)
	_, err = b.s.Retry(b.ctx, fnhost.NewIDAt(base), at(time.Minute), 1)
	wantErr(t, "Retry of an unknown id", err, store.ErrNotFound)

	got := b.claim("w", at(time.Minute), 10)
	wantSameIDs(t, "claimed after retry", ids(got), []string{failed, cancelled, succeeded})
	for _, inv := range got {
		want := 2
		if inv.ID == cancelled {
			want = 1
		}
		wantEq(t, "attempt of "+inv.ID, inv.Attempt, want)
	}
}

func testList(t *testing.T, b *bundle) {
	a1 := newInv("a", at(0))
	a2 := newInv("a", at(time.Second))
	b1 := newInv("b", at(2*time.Second))
	b1.Trigger = "http"
	child := newInv("c", at(3*time.Second))
	child.Awaiting, child.ParentID, child.Continuation = true, a1.ID, fnhost.ContinueThen
	a3 := newInv("a", at(4*time.Second))
	a3.Trigger = "http"
	b.enqueue(a1, a2, b1, child, a3)
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(5 * time.Second), LeaseUntil: at(time.Hour), Limit: 1}) // a1
	b.succeed(a1.ID, "w", at(5*time.Second), at(6*time.Second), `1`)                                          // child becomes pending

	list := func(f store.Filter) []string {
		t.Helper()
		p, err := b.s.List(b.ctx, f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if p.NextCursor != "" {
			t.Fatalf("List(%+v): next cursor %q on a short page", f, p.NextCursor)
		}
		for _, inv := range p.Items {
			if len(inv.Event) != 0 || len(inv.Attempts) != 0 {
				t.Fatalf("List item %s has an event or attempts", inv.ID)
			}
		}
		return ids(p.Items)
	}
	wantIDs(t, "all", list(store.Filter{}), []string{a3.ID, child.ID, b1.ID, a2.ID, a1.ID})
	wantIDs(t, "function a", list(store.Filter{Function: "a"}), []string{a3.ID, a2.ID, a1.ID})
	wantIDs(t, "state succeeded", list(store.Filter{State: fnhost.StateSucceeded}), []string{a1.ID})
	wantIDs(t, "state pending", list(store.Filter{State: fnhost.StatePending}), []string{a3.ID, child.ID, b1.ID, a2.ID})
	wantIDs(t, "function a, state pending", list(store.Filter{Function: "a", State: fnhost.StatePending}), []string{a3.ID, a2.ID})
	wantIDs(t, "trigger http", list(store.Filter{Trigger: "http"}), []string{a3.ID, b1.ID})
	wantIDs(t, "parent a1", list(store.Filter{ParentID: a1.ID}), []string{child.ID})
	wantIDs(t, "since 1.5s", list(store.Filter{Since: at(1500 * time.Millisecond)}), []string{a3.ID, child.ID, b1.ID})
	wantIDs(t, "until 1.5s", list(store.Filter{Until: at(1500 * time.Millisecond)}), []string{a2.ID, a1.ID})
	wantIDs(t, "since 0.5s until 3.5s", list(store.Filter{Since: at(500 * time.Millisecond), Until: at(3500 * time.Millisecond)}), []string{child.ID, b1.ID, a2.ID})
	wantIDs(t, "no match", list(store.Filter{Function: "zzz"}), nil)

	p, err := b.s.List(b.ctx, store.Filter{State: fnhost.StateSucceeded})
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("List succeeded: %v, %v", p, err)
	}
	got := p.Items[0]
	wantEq(t, "function", got.Function, "a")
	wantEq(t, "attempt", got.Attempt, 1)
	wantTimePtr(t, "finished_at", got.FinishedAt, at(6*time.Second))
	wantTime(t, "created_at", got.CreatedAt, at(0))
	wantJSON(t, "output", got.Output, json.RawMessage(`1`))

	p, err = b.s.List(b.ctx, store.Filter{Limit: 2})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantIDs(t, "first page of 2", ids(p.Items), []string{a3.ID, child.ID})
	if p.NextCursor == "" {
		t.Fatalf("List limit 2 of 5: empty next cursor")
	}
	p, err = b.s.List(b.ctx, store.Filter{Limit: 2, Cursor: p.NextCursor})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantIDs(t, "second page of 2", ids(p.Items), []string{b1.ID, a2.ID})
}

func testListPaging(t *testing.T, b *bundle) {
	const n = 250
	var want []string
	for i := 0; i < n; i += 50 {
		want = append(want, b.enqueueN("f", 50, at(time.Duration(i)*time.Millisecond))...)
	}
	other := b.enqueueN("g", 10, at(time.Minute))
	seen := map[string]int{}
	var pages []int
	cursor := ""
	prev := ""
	for range 10 {
		p, err := b.s.List(b.ctx, store.Filter{Function: "f", Limit: 100, Cursor: cursor})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		pages = append(pages, len(p.Items))
		for _, inv := range p.Items {
			seen[inv.ID]++
			if prev != "" && inv.ID >= prev {
				t.Fatalf("List: %s after %s: not newest first", inv.ID, prev)
			}
			prev = inv.ID
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if fmt.Sprint(pages) != "[100 100 50]" {
		t.Fatalf("page sizes %v, want [100 100 50]", pages)
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Fatalf("invocation %s listed %d times, want once", id, seen[id])
		}
	}
	for _, id := range other {
		if seen[id] != 0 {
			t.Fatalf("invocation %s of another function listed", id)
		}
	}
	// An exact multiple of the limit ends with an empty cursor too.
	p, err := b.s.List(b.ctx, store.Filter{Function: "g", Limit: 10})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantEq(t, "items", len(p.Items), 10)
	wantEq(t, "next cursor", p.NextCursor, "")
}

func testPrune(t *testing.T, b *bundle) {
	ids6 := b.enqueueN("f", 6, at(0))
	oldOK, oldFailed, oldCancelled, newOK, running, pending := ids6[0], ids6[1], ids6[2], ids6[3], ids6[4], ids6[5]
	retried := b.enqueue(newInv("r", at(0)))[0]
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 5, Functions: []string{"f"}})
	b.succeed(oldOK, "w", at(time.Second), at(time.Minute), `1`)
	b.fail(oldFailed, "w", at(time.Second), at(time.Minute), "x")
	if _, err := b.s.Cancel(b.ctx, oldCancelled, at(time.Minute)); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	b.succeed(newOK, "w", at(time.Second), at(time.Hour), `1`)
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 1, Functions: []string{"r"}})
	b.fail(retried, "w", at(time.Second), at(time.Minute), "x")
	if _, err := b.s.Retry(b.ctx, retried, at(2*time.Minute), 1); err != nil {
		t.Fatalf("Retry: %v", err)
	}

	n, err := b.s.Prune(b.ctx, at(30*time.Minute))
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	wantEq(t, "pruned", n, 3)
	for _, id := range []string{oldOK, oldFailed, oldCancelled} {
		b.wantNotFound(id)
	}
	b.wantState(newOK, fnhost.StateSucceeded)
	b.wantState(running, fnhost.StateRunning)
	b.wantState(pending, fnhost.StatePending)
	inv := b.wantState(retried, fnhost.StatePending)
	wantAttempts(t, inv, fnhost.OutcomeFailed)

	n, err = b.s.Prune(b.ctx, at(30*time.Minute))
	if err != nil || n != 0 {
		t.Fatalf("second Prune: %d, %v; want 0", n, err)
	}
	p, err := b.s.List(b.ctx, store.Filter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantSameIDs(t, "left after prune", ids(p.Items), []string{newOK, running, pending, retried})
}

func testStats(t *testing.T, b *bundle) {
	st, err := b.s.Stats(b.ctx, at(0))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, state := range fnhost.States {
		wantEq(t, "empty store: "+string(state), st.ByState[state], 0)
	}
	wantEq(t, "empty store: ready", st.Ready, 0)

	ids5 := b.enqueueN("f", 5, at(0))
	later := newInv("f", at(0))
	later.RunAt = at(time.Hour)
	soon := newInv("f", at(0))
	soon.RunAt = at(time.Minute)
	parent := newInv("p", at(0))
	child := newInv("c", at(0))
	child.Awaiting, child.ParentID, child.Continuation = true, parent.ID, fnhost.ContinueThen
	b.enqueue(later, soon, parent, child)

	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 3, Functions: []string{"f"}})
	b.succeed(ids5[0], "w", at(time.Second), at(2*time.Second), `1`)
	b.fail(ids5[1], "w", at(time.Second), at(2*time.Second), "x")
	if _, err := b.s.Cancel(b.ctx, ids5[3], at(2*time.Second)); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// Now: running ids5[2]; pending ids5[4], parent; scheduled later, soon; awaiting child.
	st, err = b.s.Stats(b.ctx, at(2*time.Minute))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := map[fnhost.State]int64{
		fnhost.StateScheduled: 2, fnhost.StatePending: 2, fnhost.StateRunning: 1, fnhost.StateSucceeded: 1,
		fnhost.StateFailed: 1, fnhost.StateCancelled: 1, fnhost.StateAwaiting: 1,
	}
	for _, state := range fnhost.States {
		wantEq(t, "count of "+string(state), st.ByState[state], want[state])
	}
	wantEq(t, "ready at +2m (2 pending, 1 scheduled due)", st.Ready, 3)
	st, err = b.s.Stats(b.ctx, at(2*time.Hour))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	wantEq(t, "ready at +2h", st.Ready, 4)
}

func testCancelledContext(t *testing.T, b *bundle) {
	ctx, cancel := context.WithCancel(b.ctx)
	cancel()
	inv := newInv("f", at(0))
	if _, err := b.s.Enqueue(ctx, []store.NewInvocation{inv}); err == nil {
		t.Fatalf("Enqueue with a cancelled context: no error")
	}
	// The store still works for others.
	b.enqueue(newInv("f", at(time.Second)))
	if got := b.claim("w", at(time.Minute), 10); len(got) != 1 {
		t.Fatalf("Claim after a cancelled call: %v, want one", ids(got))
	}
}
