package storetest

import (
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// backlog is the number of invocations of the function testClaimBesideBacklog does not
// claim.
const backlog = 3000

func testClaimBesideBacklog(t *testing.T, b *bundle) {
	// The backlog comes first in claim order: older, and some of it at a higher
	// priority than anything of noop.
	var invs []store.NewInvocation
	for i := range backlog {
		inv := newInv("inbox", at(time.Duration(i)*time.Microsecond))
		inv.Priority = i % 3
		invs = append(invs, inv)
	}
	for off := 0; off < len(invs); off += 500 {
		b.enqueue(invs[off:min(off+500, len(invs))]...)
	}
	noop := func(created time.Time, priority int) store.NewInvocation {
		inv := newInv("noop", created)
		inv.Priority = priority
		return inv
	}
	n1, n2, n3 := noop(at(time.Second), 0), noop(at(2*time.Second), 1), noop(at(3*time.Second), 0)
	later := noop(at(4*time.Second), 5)
	later.RunAt = at(time.Hour)
	b.enqueue(n1, n2, n3, later)

	now := at(time.Minute)
	req := store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 2, Functions: []string{"noop"}}
	wantIDs(t, "first claim of noop", ids(b.claimReq(req)), []string{n2.ID, n1.ID})
	req.Limit = 10
	wantIDs(t, "second claim of noop", ids(b.claimReq(req)), []string{n3.ID})
	if got := b.claimReq(req); len(got) != 0 {
		t.Fatalf("claim of noop with nothing ready: %v, want none", ids(got))
	}

	// Every function but the one with the backlog.
	n4 := noop(at(5*time.Second), 0)
	b.enqueue(n4)
	excl := store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10, Exclude: []string{"inbox"}}
	wantIDs(t, "claim excluding inbox", ids(b.claimReq(excl)), []string{n4.ID})
	if got := b.claimReq(excl); len(got) != 0 {
		t.Fatalf("claim excluding inbox with nothing else ready: %v, want none", ids(got))
	}
	excl.Now = at(time.Hour)
	wantIDs(t, "claim excluding inbox at the run_at of the scheduled one", ids(b.claimReq(excl)), []string{later.ID})

	// The backlog was not touched.
	st, err := b.s.Stats(b.ctx, now)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	wantEq(t, "pending", st.ByState[fnhost.StatePending], backlog)
	wantEq(t, "running", st.ByState[fnhost.StateRunning], 5)
	wantEq(t, "ready", st.Ready, backlog)

	// And is claimed in its own order when asked for.
	req.Functions, req.Limit = []string{"inbox", "noop"}, 3
	wantIDs(t, "claim of inbox", ids(b.claimReq(req)), []string{invs[2].ID, invs[5].ID, invs[8].ID})
}

func testClaimOrderAcrossFunctions(t *testing.T, b *bundle) {
	mk := func(fn string, prio int, runAt time.Duration) store.NewInvocation {
		inv := newInv(fn, at(0))
		inv.Priority = prio
		inv.RunAt = at(runAt)
		return inv
	}
	// In claim order: a2, b2, b1x, a1y (same priority and run_at as b1x, larger id),
	// a1, b0, b0late, then a0 once its run_at comes.
	b2 := mk("b", 2, 2*time.Second)
	a2 := mk("a", 2, time.Second)
	b1x := mk("b", 1, time.Second)
	a1y := mk("a", 1, time.Second)
	larger(&b1x, &a1y)
	a1 := mk("a", 1, 3*time.Second)
	b0 := mk("b", 0, 0)
	b0late := mk("b", 0, 5*time.Second)
	a0 := mk("a", 0, time.Hour)
	// c comes first in claim order but is not asked for.
	c := mk("c", 9, 0)
	b.enqueue(b0late, a1, b2, c, a2, b1x, a1y, b0, a0)

	now := at(10 * time.Second)
	req := store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 3, Functions: []string{"b", "a"}}
	wantIDs(t, "first claim of a and b", ids(b.claimReq(req)), []string{a2.ID, b2.ID, b1x.ID})
	req.Limit = 2
	wantIDs(t, "second claim of a and b", ids(b.claimReq(req)), []string{a1y.ID, a1.ID})
	req.Limit = 10
	wantIDs(t, "third claim of a and b", ids(b.claimReq(req)), []string{b0.ID, b0late.ID})
	req.Now = at(time.Hour)
	wantIDs(t, "claim at the run_at of a0", ids(b.claimReq(req)), []string{a0.ID})
	b.wantState(c.ID, fnhost.StatePending)

	// The same across every function, with no Functions.
	d1 := mk("d", 1, 0)
	e1 := mk("e", 1, 0)
	d0 := mk("d", 0, 0)
	larger(&d1, &e1)
	b.enqueue(d0, e1, d1)
	all := store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 3}
	wantIDs(t, "claim of every function", ids(b.claimReq(all)), []string{c.ID, d1.ID, e1.ID})
	wantIDs(t, "claim of every function, the rest", ids(b.claimReq(all)), []string{d0.ID})
}

// larger gives y the larger id of x and y. Ids made in one millisecond grow in the
// order they are made only while no other test makes one for another time meanwhile
// (the suite runs in parallel), so a test that needs an order of ids sets it.
func larger(x, y *store.NewInvocation) {
	if y.ID < x.ID {
		x.ID, y.ID = y.ID, x.ID
	}
}
