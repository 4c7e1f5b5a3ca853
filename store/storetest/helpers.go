package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// base is the time the suite's invocations are created at. It has a sub-microsecond
// part on purpose: stores keep microseconds.
var base = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// bundle is what a subtest works with: its own store, a context, and the test.
type bundle struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
}

func setup(t *testing.T, open func(t *testing.T) store.Store) *bundle {
	t.Helper()
	t.Parallel()
	return &bundle{t: t, s: open(t), ctx: context.Background()}
}

// event returns a CloudEvent envelope as JSON, with data {"n": n}.
func event(fn string, n int) json.RawMessage {
	ev := fnhost.Event{
		SpecVersion:     fnhost.SpecVersion,
		ID:              fmt.Sprintf("ev-%s-%d", fn, n),
		Source:          "fnhost/storetest",
		Type:            "fnhost.test",
		Time:            base,
		Subject:         fn,
		DataContentType: "application/json",
		Data:            json.RawMessage(fmt.Sprintf(`{"n": %d}`, n)),
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// newInv is a pending invocation of fn created at created.
func newInv(fn string, created time.Time) store.NewInvocation {
	return store.NewInvocation{
		ID:          fnhost.NewIDAt(created),
		Function:    fn,
		Trigger:     "queue",
		Event:       event(fn, 1),
		MaxAttempts: 3,
		CreatedAt:   created,
	}
}

// enqueue stores invs and returns their ids, failing on any error or duplicate.
func (b *bundle) enqueue(invs ...store.NewInvocation) []string {
	b.t.Helper()
	res, err := b.s.Enqueue(b.ctx, invs)
	if err != nil {
		b.t.Fatalf("Enqueue: %v", err)
	}
	if len(res) != len(invs) {
		b.t.Fatalf("Enqueue returned %d results for %d invocations", len(res), len(invs))
	}
	ids := make([]string, len(res))
	for i, r := range res {
		if r.Duplicate {
			b.t.Fatalf("Enqueue result %d: unexpected duplicate of %s", i, r.ID)
		}
		if r.ID != invs[i].ID {
			b.t.Fatalf("Enqueue result %d: id %q, want %q", i, r.ID, invs[i].ID)
		}
		ids[i] = r.ID
	}
	return ids
}

// enqueueN stores n pending invocations of fn created one millisecond apart from start.
func (b *bundle) enqueueN(fn string, n int, start time.Time) []string {
	b.t.Helper()
	invs := make([]store.NewInvocation, n)
	for i := range invs {
		invs[i] = newInv(fn, start.Add(time.Duration(i)*time.Millisecond))
	}
	return b.enqueue(invs...)
}

func (b *bundle) get(id string) *fnhost.Invocation {
	b.t.Helper()
	inv, err := b.s.Get(b.ctx, id)
	if err != nil {
		b.t.Fatalf("Get(%s): %v", id, err)
	}
	if inv.ID != id {
		b.t.Fatalf("Get(%s) returned id %s", id, inv.ID)
	}
	return inv
}

func (b *bundle) claim(owner string, now time.Time, limit int) []*fnhost.Invocation {
	b.t.Helper()
	return b.claimReq(store.ClaimRequest{Owner: owner, Now: now, LeaseUntil: now.Add(time.Minute), Limit: limit})
}

func (b *bundle) claimReq(req store.ClaimRequest) []*fnhost.Invocation {
	b.t.Helper()
	invs, err := b.s.Claim(b.ctx, req)
	if err != nil {
		b.t.Fatalf("Claim: %v", err)
	}
	return invs
}

// claimOne claims and expects exactly the invocation id.
func (b *bundle) claimOne(owner string, now time.Time, id string) *fnhost.Invocation {
	b.t.Helper()
	got := b.claim(owner, now, 10)
	if len(got) != 1 || got[0].ID != id {
		b.t.Fatalf("Claim at %s: got %v, want exactly [%s]", now.Format(time.RFC3339Nano), ids(got), id)
	}
	return got[0]
}

func (b *bundle) complete(cs ...store.Completion) []string {
	b.t.Helper()
	dropped, err := b.s.Complete(b.ctx, cs)
	if err != nil {
		b.t.Fatalf("Complete: %v", err)
	}
	return dropped
}

// succeed completes id as succeeded by owner at finished, and expects it applied.
func (b *bundle) succeed(id, owner string, started, finished time.Time, output string) {
	b.t.Helper()
	dropped := b.complete(store.Completion{
		ID: id, Owner: owner, State: fnhost.StateSucceeded, Output: json.RawMessage(output),
		Attempt: fnhost.Attempt{StartedAt: started, FinishedAt: finished, Outcome: fnhost.OutcomeSucceeded, Owner: owner},
	})
	if len(dropped) != 0 {
		b.t.Fatalf("Complete(%s) dropped %v", id, dropped)
	}
}

// fail completes id as failed (attempts exhausted) by owner at finished.
func (b *bundle) fail(id, owner string, started, finished time.Time, msg string) {
	b.t.Helper()
	dropped := b.complete(store.Completion{
		ID: id, Owner: owner, State: fnhost.StateFailed, Error: msg,
		Attempt: fnhost.Attempt{StartedAt: started, FinishedAt: finished, Outcome: fnhost.OutcomeFailed, Error: msg, Owner: owner},
	})
	if len(dropped) != 0 {
		b.t.Fatalf("Complete(%s) dropped %v", id, dropped)
	}
}

func (b *bundle) wantState(id string, want fnhost.State) *fnhost.Invocation {
	b.t.Helper()
	inv := b.get(id)
	if inv.State != want {
		b.t.Fatalf("invocation %s (%s): state %s, want %s", id, inv.Function, inv.State, want)
	}
	return inv
}

func (b *bundle) wantNotFound(id string) {
	b.t.Helper()
	_, err := b.s.Get(b.ctx, id)
	if !errors.Is(err, store.ErrNotFound) {
		b.t.Fatalf("Get(%s): err %v, want ErrNotFound", id, err)
	}
}

func ids(invs []*fnhost.Invocation) []string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.ID
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func wantSameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	wantIDs(t, what, sortedCopy(got), sortedCopy(want))
}

// sameTime reports whether a and b are the same instant at microsecond precision: a
// store may truncate or round the nanoseconds.
func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Microsecond && d < time.Microsecond
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Fatalf("%s: %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if got.Location() != time.UTC {
		t.Fatalf("%s: location %s, want UTC", what, got.Location())
	}
}

func wantTimePtr(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil, want %s", what, want.Format(time.RFC3339Nano))
	}
	wantTime(t, what, *got, want)
}

func wantNilTime(t *testing.T, what string, got *time.Time) {
	t.Helper()
	if got != nil {
		t.Fatalf("%s: %s, want nil", what, got.Format(time.RFC3339Nano))
	}
}

// wantJSON compares JSON documents by value: a store may reformat them.
func wantJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	if len(want) == 0 || string(want) == "null" {
		if len(got) != 0 && string(got) != "null" {
			t.Fatalf("%s: %s, want empty", what, got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want %q is not JSON: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: %s, want %s", what, got, want)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err %v, want %v", what, err, target)
	}
}

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func wantStr(t *testing.T, what string, got *string, want string) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil, want %q", what, want)
	}
	if *got != want {
		t.Fatalf("%s: %q, want %q", what, *got, want)
	}
}

// wantAttempts checks the outcomes of an invocation's attempts, in number order.
func wantAttempts(t *testing.T, inv *fnhost.Invocation, outcomes ...fnhost.Outcome) {
	t.Helper()
	var got []fnhost.Outcome
	for i, a := range inv.Attempts {
		got = append(got, a.Outcome)
		if a.Number != i+1 {
			t.Fatalf("invocation %s: attempt %d has number %d, want %d", inv.ID, i, a.Number, i+1)
		}
	}
	if !slices.Equal(got, outcomes) {
		t.Fatalf("invocation %s: attempt outcomes %v, want %v", inv.ID, got, outcomes)
	}
}
