package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// listAll follows the cursor of List from f until the last page and returns every id,
// and how many pages it took.
func (b *bundle) listAll(f store.Filter) (all []string, pages int) {
	b.t.Helper()
	for pages < 10000 {
		p, err := b.s.List(b.ctx, f)
		if err != nil {
			b.t.Fatalf("List(%+v): %v", f, err)
		}
		pages++
		all = append(all, ids(p.Items)...)
		if p.NextCursor == "" {
			return all, pages
		}
		if p.NextCursor == f.Cursor {
			b.t.Fatalf("List(%+v): the next cursor does not move", f)
		}
		f.Cursor = p.NextCursor
	}
	b.t.Fatalf("List(%+v): more than 10000 pages", f)
	return nil, 0
}

// testListMaxScan: with MaxScan, a filter an index cannot answer (a trigger, a
// pending state) stops after MaxScan candidate rows with a short page and a cursor, and
// following the cursors lists exactly what an unbounded List lists, in the same order.
func testListMaxScan(t *testing.T, b *bundle) {
	var invs []store.NewInvocation
	for i := range 120 {
		inv := newInv("f", at(time.Duration(i)*time.Millisecond))
		if i%40 == 0 {
			inv.Trigger = "cron" // 3 of them, the oldest one first
		}
		invs = append(invs, inv)
	}
	b.enqueue(invs...)
	g := b.enqueueN("g", 5, at(time.Second))

	for _, f := range []store.Filter{
		{Trigger: "cron"},
		{Trigger: "cron", Function: "f"},
		{State: fnhost.StatePending, Function: "g"},
		{Trigger: "queue", Limit: 7},
		{Since: at(30 * time.Millisecond), Until: at(90 * time.Millisecond), Limit: 8},
	} {
		want, _ := b.listAll(f)
		bounded := f
		bounded.MaxScan = 10
		got, pages := b.listAll(bounded)
		wantIDs(t, fmt.Sprintf("%+v with MaxScan 10", f), got, want)
		if f.Trigger == "cron" && pages < 3 {
			t.Errorf("%+v with MaxScan 10: %d pages over 120 candidate rows, want the scan cut in windows", f, pages)
		}
	}

	// The newest 10 rows hold no cron invocation: the first page is empty, with a cursor.
	p, err := b.s.List(b.ctx, store.Filter{Trigger: "cron", MaxScan: 10})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(p.Items) != 0 || p.NextCursor == "" {
		t.Fatalf("List trigger cron, MaxScan 10: %d items, cursor %q; want none and a cursor", len(p.Items), p.NextCursor)
	}
	// A filter its index answers whole is not cut: a full page, as without MaxScan.
	p, err = b.s.List(b.ctx, store.Filter{Function: "g", MaxScan: 2, Limit: 10})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantIDs(t, "function g, MaxScan 2", ids(p.Items), reversed(g))
	wantEq(t, "next cursor", p.NextCursor, "")
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// testListFunctionAndState: the function and state filters together, for every state,
// newest first and paged.
func testListFunctionAndState(t *testing.T, b *bundle) {
	fIDs := b.enqueueN("f", 6, at(0))
	gIDs := b.enqueueN("g", 6, at(time.Second))
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Minute), LeaseUntil: at(time.Hour), Limit: 12})
	for _, ids := range [][]string{fIDs, gIDs} {
		b.fail(ids[0], "w", at(time.Minute), at(2*time.Minute), "x")
		b.fail(ids[1], "w", at(time.Minute), at(2*time.Minute), "x")
		b.succeed(ids[2], "w", at(time.Minute), at(2*time.Minute), `1`)
		if _, err := b.s.Cancel(b.ctx, ids[3], at(2*time.Minute)); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		b.complete(store.Completion{ID: ids[4], Owner: "w", State: fnhost.StateScheduled, RunAt: at(time.Hour),
			Attempt: fnhost.Attempt{FinishedAt: at(2 * time.Minute), Outcome: fnhost.OutcomeFailed}})
	}
	cases := []struct {
		state fnhost.State
		want  []string
	}{
		{fnhost.StateFailed, []string{fIDs[1], fIDs[0]}},
		{fnhost.StateSucceeded, []string{fIDs[2]}},
		{fnhost.StateCancelled, []string{fIDs[3]}},
		{fnhost.StateScheduled, []string{fIDs[4]}},
		{fnhost.StateRunning, []string{fIDs[5]}},
		{fnhost.StatePending, nil},
	}
	for _, c := range cases {
		got, _ := b.listAll(store.Filter{Function: "f", State: c.state, Limit: 1})
		wantIDs(t, "function f, state "+string(c.state), got, c.want)
	}
	got, _ := b.listAll(store.Filter{State: fnhost.StateFailed, Limit: 3})
	wantIDs(t, "state failed", got, []string{gIDs[1], gIDs[0], fIDs[1], fIDs[0]})
}

// testCounts: Counts per function and state, the backlog due at now and its oldest.
func testCounts(t *testing.T, b *bundle) {
	c, err := b.s.Counts(b.ctx, at(0))
	if err != nil || len(c) != 0 {
		t.Fatalf("Counts of an empty store: %v, %v; want none", c, err)
	}
	f := b.enqueueN("f", 6, at(0))
	later := newInv("f", at(10*time.Millisecond))
	later.RunAt = at(time.Hour)
	soon := newInv("f", at(10*time.Millisecond))
	soon.RunAt = at(time.Minute)
	parent := newInv("p", at(0))
	child := newInv("c", at(0))
	child.Awaiting, child.ParentID, child.Continuation = true, parent.ID, fnhost.ContinueThen
	b.enqueue(later, soon, parent, child)
	b.enqueueN("g", 2, at(5*time.Second))

	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 4, Functions: []string{"f"}})
	b.succeed(f[0], "w", at(time.Second), at(2*time.Second), `1`)
	b.fail(f[1], "w", at(time.Second), at(2*time.Second), "x")
	if _, err := b.s.Cancel(b.ctx, f[2], at(2*time.Second)); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// f: running f[3]; pending f[4], f[5]; scheduled later, soon; failed f[1]; cancelled f[2].
	c, err = b.s.Counts(b.ctx, at(2*time.Minute))
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	want := map[string]store.FunctionCounts{
		"f": {Scheduled: 2, Pending: 2, Running: 1, Failed: 1, Cancelled: 1, Ready: 3, OldestReady: at(4 * time.Millisecond)},
		"p": {Pending: 1, Ready: 1, OldestReady: at(0)},
		"c": {Awaiting: 1},
		"g": {Pending: 2, Ready: 2, OldestReady: at(5 * time.Second)},
	}
	if len(c) != len(want) {
		t.Errorf("Counts has functions %v, want %v", keys(c), keys(want))
	}
	for fn, w := range want {
		got := c[fn]
		wantTime(t, fn+" oldest ready", got.OldestReady, w.OldestReady)
		got.OldestReady, w.OldestReady = time.Time{}, time.Time{}
		if got != w {
			t.Errorf("Counts[%s] = %+v, want %+v", fn, got, w)
		}
	}
	c, err = b.s.Counts(b.ctx, at(2*time.Hour))
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	wantEq(t, "f ready at +2h", c["f"].Ready, 4)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sortedCopy(out)
}

// testThroughput: completions and finished enqueues add their attempts to the bucket
// of their minute and function, in the transaction that records them; dropped
// completions add nothing; Prune drops the old minutes.
func testThroughput(t *testing.T, b *bundle) {
	minute := base.Truncate(time.Minute).Add(10 * time.Minute)
	ids := b.enqueueN("f", 5, at(0))
	g := b.enqueueN("g", 1, at(0))
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 10})
	b.succeed(ids[0], "w", minute, minute.Add(5*time.Second), `1`)
	b.succeed(ids[1], "w", minute, minute.Add(59*time.Second), `1`)
	b.fail(ids[2], "w", minute, minute.Add(61*time.Second), "dead")
	// A failed attempt that is retried counts as failed, not dead; a timeout as failed.
	b.complete(store.Completion{ID: ids[3], Owner: "w", State: fnhost.StateScheduled, RunAt: minute.Add(time.Hour),
		Attempt: fnhost.Attempt{StartedAt: minute, FinishedAt: minute.Add(62 * time.Second), Outcome: fnhost.OutcomeTimeout}})
	// A cancellation counts nowhere.
	b.complete(store.Completion{ID: ids[4], Owner: "w", State: fnhost.StateCancelled,
		Attempt: fnhost.Attempt{StartedAt: minute, FinishedAt: minute.Add(time.Second), Outcome: fnhost.OutcomeCancelled}})
	// A completion by an owner that does not hold the lease is dropped and counts nowhere.
	if dropped := b.complete(store.Completion{ID: g[0], Owner: "other", State: fnhost.StateSucceeded,
		Attempt: fnhost.Attempt{FinishedAt: minute, Outcome: fnhost.OutcomeSucceeded}}); len(dropped) != 1 {
		t.Fatalf("a completion by another owner was applied")
	}
	b.succeed(g[0], "w", minute, minute.Add(2*time.Second), `1`)
	// Invocations stored finished count too.
	done := ranInv("h", "w", minute.Add(3*time.Second))
	done.Completion = &store.Completion{State: fnhost.StateSucceeded, Output: json.RawMessage(`2`),
		Attempt: fnhost.Attempt{FinishedAt: minute.Add(4 * time.Second), Outcome: fnhost.OutcomeSucceeded}}
	failed := ranInv("h", "w", minute.Add(3*time.Second))
	failed.Completion = &store.Completion{State: fnhost.StateFailed, Error: "no",
		Attempt: fnhost.Attempt{FinishedAt: minute.Add(4 * time.Second), Outcome: fnhost.OutcomeFailed}}
	b.enqueue(done)
	b.enqueue(failed)
	// A duplicate of a finished invocation adds nothing.
	dup := done
	if res, err := b.s.Enqueue(b.ctx, []store.NewInvocation{dup}); err != nil || !res[0].Duplicate {
		t.Fatalf("Enqueue of a duplicate: %v, %v", res, err)
	}

	got, err := b.s.Throughput(b.ctx, minute.Add(-time.Hour))
	if err != nil {
		t.Fatalf("Throughput: %v", err)
	}
	want := []store.Bucket{
		{Minute: minute, Function: "f", Succeeded: 2},
		{Minute: minute, Function: "g", Succeeded: 1},
		{Minute: minute, Function: "h", Succeeded: 1, Failed: 1, Dead: 1},
		{Minute: minute.Add(time.Minute), Function: "f", Failed: 2, Dead: 1},
	}
	wantBuckets(t, "throughput", got, want)
	got, err = b.s.Throughput(b.ctx, minute.Add(30*time.Second))
	if err != nil {
		t.Fatalf("Throughput: %v", err)
	}
	wantBuckets(t, "throughput since the middle of the first minute", got, want)
	got, err = b.s.Throughput(b.ctx, minute.Add(time.Minute))
	if err != nil {
		t.Fatalf("Throughput: %v", err)
	}
	wantBuckets(t, "throughput since the second minute", got, want[3:])

	if _, err := b.s.Prune(b.ctx, minute.Add(time.Minute)); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	got, err = b.s.Throughput(b.ctx, minute.Add(-time.Hour))
	if err != nil {
		t.Fatalf("Throughput: %v", err)
	}
	wantBuckets(t, "throughput after Prune", got, want[3:])
}

func wantBuckets(t *testing.T, what string, got, want []store.Bucket) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Minute.Equal(want[i].Minute) && got[i].Function == want[i].Function &&
			got[i].Succeeded == want[i].Succeeded && got[i].Failed == want[i].Failed && got[i].Dead == want[i].Dead
	}
	if !ok {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}
