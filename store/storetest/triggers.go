package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// The bookkeeping of triggers: state records and receipts, and what Enqueue does with
// receipts and with the continuations of duplicates.

func (b *bundle) getState(key string) []byte {
	b.t.Helper()
	v, err := b.s.GetState(b.ctx, key)
	if err != nil {
		b.t.Fatalf("GetState(%q): %v", key, err)
	}
	return v
}

func (b *bundle) putState(key string, value []byte) {
	b.t.Helper()
	if err := b.s.PutState(b.ctx, key, value); err != nil {
		b.t.Fatalf("PutState(%q): %v", key, err)
	}
}

// wantStateValue checks the value under key; want nil means unset.
func (b *bundle) wantStateValue(key string, want []byte) {
	b.t.Helper()
	got := b.getState(key)
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		b.t.Fatalf("GetState(%q): %q (nil: %t), want %q (nil: %t)", key, got, got == nil, want, want == nil)
	}
}

func (b *bundle) cas(key string, old, new []byte) bool {
	b.t.Helper()
	ok, err := b.s.CompareAndPutState(b.ctx, key, old, new)
	if err != nil {
		b.t.Fatalf("CompareAndPutState(%q, %q, %q): %v", key, old, new, err)
	}
	return ok
}

// wantCAS runs a CompareAndPutState and checks whether it wrote.
func (b *bundle) wantCAS(key string, old, new []byte, want bool) {
	b.t.Helper()
	if got := b.cas(key, old, new); got != want {
		b.t.Fatalf("CompareAndPutState(%q, old %q (nil: %t), new %q): wrote %t, want %t", key, old, old == nil, new, got, want)
	}
}

// rinv is an fs-triggered invocation of fn with a receipt for key at version.
func rinv(fn, key, version string, created time.Time) store.NewInvocation {
	inv := newInv(fn, created)
	inv.Trigger = "fs"
	inv.ReceiptKey, inv.ReceiptVersion = key, version
	return inv
}

// thenOf returns an awaiting `then` continuation of parent.
func thenOf(parent store.NewInvocation, fn string) store.NewInvocation {
	inv := newInv(fn, parent.CreatedAt)
	inv.Awaiting, inv.ParentID, inv.Continuation = true, parent.ID, fnhost.ContinueThen
	return inv
}

func (b *bundle) enqueueResults(invs ...store.NewInvocation) []store.EnqueueResult {
	b.t.Helper()
	res, err := b.s.Enqueue(b.ctx, invs)
	if err != nil {
		b.t.Fatalf("Enqueue: %v", err)
	}
	if len(res) != len(invs) {
		b.t.Fatalf("Enqueue returned %d results for %d invocations", len(res), len(invs))
	}
	return res
}

// wantEnqueue enqueues invs and checks every result.
func (b *bundle) wantEnqueue(what string, invs []store.NewInvocation, want []store.EnqueueResult) {
	b.t.Helper()
	res := b.enqueueResults(invs...)
	for i := range want {
		if res[i] != want[i] {
			b.t.Fatalf("%s: result %d (%s): %+v, want %+v", what, i, invs[i].Function, res[i], want[i])
		}
	}
}

// wantDuplicateOf enqueues inv alone and expects a duplicate of id, with inv not stored.
func (b *bundle) wantDuplicateOf(what string, inv store.NewInvocation, id string) {
	b.t.Helper()
	b.wantEnqueue(what, []store.NewInvocation{inv}, []store.EnqueueResult{{ID: id, Duplicate: true}})
	if inv.ID != id {
		b.wantNotFound(inv.ID)
	}
}

func (b *bundle) wantReceipts(fn string, keys []string, want map[string]string) {
	b.t.Helper()
	got, err := b.s.Receipts(b.ctx, fn, keys)
	if err != nil {
		b.t.Fatalf("Receipts(%s): %v", fn, err)
	}
	if got == nil && len(want) > 0 {
		b.t.Fatalf("Receipts(%s): nil map, want %v", fn, want)
	}
	if !maps.Equal(got, want) {
		b.t.Fatalf("Receipts(%s, %d keys): %v, want %v", fn, len(keys), got, want)
	}
}

func (b *bundle) receiptKeys(fn, prefix, after string, limit int) []string {
	b.t.Helper()
	keys, err := b.s.ReceiptKeys(b.ctx, fn, prefix, after, limit)
	if err != nil {
		b.t.Fatalf("ReceiptKeys(%s, %q, %q, %d): %v", fn, prefix, after, limit, err)
	}
	return keys
}

func testState(t *testing.T, b *bundle) {
	b.wantStateValue("cron/nightly", nil)

	b.putState("cron/nightly", []byte("2025-06-01T00:00:00Z"))
	b.putState("cron/hourly", []byte("2025-06-01T12:00:00Z"))
	b.wantStateValue("cron/nightly", []byte("2025-06-01T00:00:00Z"))
	b.wantStateValue("cron/hourly", []byte("2025-06-01T12:00:00Z"))

	// Overwrite: the other key keeps its value.
	b.putState("cron/nightly", []byte("2025-06-02T00:00:00Z"))
	b.wantStateValue("cron/nightly", []byte("2025-06-02T00:00:00Z"))
	b.wantStateValue("cron/hourly", []byte("2025-06-01T12:00:00Z"))

	// Unset keys, including ones that share a prefix with a set key, are nil.
	b.wantStateValue("cron/nightl", nil)
	b.wantStateValue("cron/nightly/x", nil)
	b.wantStateValue("CRON/NIGHTLY", nil)

	// Values are bytes: binary and shorter values replace longer ones exactly.
	bin := []byte{0, 0xff, 'a', 0, 0x80}
	b.putState("s3/checkpoint", bin)
	b.wantStateValue("s3/checkpoint", bin)
	b.putState("s3/checkpoint", []byte("x"))
	b.wantStateValue("s3/checkpoint", []byte("x"))

	// An empty value is set, not unset; nil is stored as empty.
	b.putState("empty", []byte{})
	b.wantStateValue("empty", []byte{})
	b.putState("nil", nil)
	b.wantStateValue("nil", []byte{})

	// The value returned is the caller's to keep: changing it changes nothing stored.
	got := b.getState("cron/hourly")
	got[0] = 'X'
	b.wantStateValue("cron/hourly", []byte("2025-06-01T12:00:00Z"))
	// And so is the value passed in.
	v := []byte("abc")
	b.putState("mine", v)
	v[0] = 'X'
	b.wantStateValue("mine", []byte("abc"))
}

func testCompareAndPutState(t *testing.T, b *bundle) {
	// old nil: the key must be unset.
	b.wantCAS("k", nil, []byte("a"), true)
	b.wantStateValue("k", []byte("a"))
	b.wantCAS("k", nil, []byte("b"), false)
	b.wantStateValue("k", []byte("a"))

	// old must equal the value exactly.
	b.wantCAS("k", []byte("x"), []byte("b"), false)
	b.wantCAS("k", []byte("A"), []byte("b"), false)
	b.wantCAS("k", []byte("aa"), []byte("b"), false)
	b.wantCAS("k", []byte{}, []byte("b"), false)
	b.wantStateValue("k", []byte("a"))
	b.wantCAS("k", []byte("a"), []byte("b"), true)
	b.wantStateValue("k", []byte("b"))
	b.wantCAS("k", []byte("a"), []byte("c"), false) // stale
	b.wantStateValue("k", []byte("b"))

	// An empty value is not unset, and an unset key is not empty.
	b.wantCAS("k", []byte("b"), []byte{}, true)
	b.wantStateValue("k", []byte{})
	b.wantCAS("k", nil, []byte("z"), false)
	b.wantCAS("k", []byte{}, []byte("c"), true)
	b.wantStateValue("k", []byte("c"))
	b.wantCAS("unset", []byte{}, []byte("x"), false)
	b.wantCAS("unset", []byte("c"), []byte("x"), false)
	b.wantStateValue("unset", nil)

	// PutState and CompareAndPutState see each other's values.
	b.putState("p", []byte("1"))
	b.wantCAS("p", nil, []byte("2"), false)
	b.wantCAS("p", []byte("1"), []byte("2"), true)
	b.wantStateValue("p", []byte("2"))

	// Instances racing on a checkpoint with the same old value: exactly one wins.
	race := func(old []byte, round int) []byte {
		const n = 16
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners [][]byte
			errs    []error
		)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				val := fmt.Appendf(nil, "round-%d-instance-%d", round, i)
				ok, err := b.s.CompareAndPutState(b.ctx, "cron/slot", old, val)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				if ok {
					winners = append(winners, val)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: CompareAndPutState: %v", round, errs[0])
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of %d racing CompareAndPutState wrote, want exactly 1", round, len(winners), n)
		}
		b.wantStateValue("cron/slot", winners[0])
		return winners[0]
	}
	v := race(nil, 1)
	race(v, 2)
}

func testReceipts(t *testing.T, b *bundle) {
	first := rinv("f", "in/a.csv", "v1", at(0))
	b.enqueue(first)
	b.wantReceipts("f", []string{"in/a.csv"}, map[string]string{"in/a.csv": "v1"})
	got := b.wantState(first.ID, fnhost.StatePending)
	wantEq(t, "trigger", got.Trigger, "fs")

	// The same version again: a duplicate of the first, nothing stored.
	b.wantDuplicateOf("same version", rinv("f", "in/a.csv", "v1", at(time.Second)), first.ID)

	// The same key of another function is another receipt.
	other := rinv("g", "in/a.csv", "v1", at(time.Second))
	b.enqueue(other)
	b.wantDuplicateOf("same version for g", rinv("g", "in/a.csv", "v1", at(2*time.Second)), other.ID)

	// A new version is a new invocation, and the receipt moves to it.
	v2 := rinv("f", "in/a.csv", "v2", at(2*time.Second))
	b.enqueue(v2)
	b.wantState(v2.ID, fnhost.StatePending)
	b.wantReceipts("f", []string{"in/a.csv"}, map[string]string{"in/a.csv": "v2"})
	b.wantReceipts("g", []string{"in/a.csv"}, map[string]string{"in/a.csv": "v1"})
	b.wantDuplicateOf("v2 again", rinv("f", "in/a.csv", "v2", at(3*time.Second)), v2.ID)

	// Only the last version counts: going back to v1 is a change.
	back := rinv("f", "in/a.csv", "v1", at(4*time.Second))
	b.enqueue(back)
	b.wantReceipts("f", []string{"in/a.csv"}, map[string]string{"in/a.csv": "v1"})
	b.wantDuplicateOf("v1 after going back", rinv("f", "in/a.csv", "v1", at(5*time.Second)), back.ID)

	// The receipt holds whatever became of its invocation.
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Minute), LeaseUntil: at(time.Hour), Limit: 10, Functions: []string{"f"}})
	b.fail(back.ID, "w", at(time.Minute), at(2*time.Minute), "boom")
	b.wantDuplicateOf("after its invocation failed", rinv("f", "in/a.csv", "v1", at(3*time.Minute)), back.ID)

	// An empty version is a version like another.
	empty := rinv("f", "in/b.csv", "", at(6*time.Second))
	b.enqueue(empty)
	b.wantReceipts("f", []string{"in/b.csv"}, map[string]string{"in/b.csv": ""})
	b.wantDuplicateOf("empty version again", rinv("f", "in/b.csv", "", at(7*time.Second)), empty.ID)
	b.enqueue(rinv("f", "in/b.csv", "v1", at(8*time.Second)))

	// Re-enqueueing a stored id with its receipt (a retried call) is a duplicate of it.
	b.wantDuplicateOf("same id", v2, v2.ID)

	// A version needs a key.
	bad := newInv("f", at(9*time.Second))
	bad.ReceiptVersion = "v1"
	if res, err := b.s.Enqueue(b.ctx, []store.NewInvocation{bad}); err == nil {
		t.Fatalf("Enqueue of a receipt version without a key: %+v, want an error", res)
	}
	b.wantNotFound(bad.ID)
}

func testReceiptsSurvivePrune(t *testing.T, b *bundle) {
	first := rinv("f", "watched/report.pdf", "size=10,mtime=1", at(0))
	plain := newInv("f", at(0))
	b.enqueue(first, plain)
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Second), LeaseUntil: at(time.Hour), Limit: 10})
	b.succeed(first.ID, "w", at(time.Second), at(2*time.Second), `1`)
	b.succeed(plain.ID, "w", at(time.Second), at(2*time.Second), `1`)

	n, err := b.s.Prune(b.ctx, at(time.Hour))
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	wantEq(t, "pruned", n, 2)
	b.wantNotFound(first.ID)

	// Months later the file is still there, unchanged: not submitted again.
	b.wantReceipts("f", []string{"watched/report.pdf"}, map[string]string{"watched/report.pdf": "size=10,mtime=1"})
	b.wantDuplicateOf("same version after prune", rinv("f", "watched/report.pdf", "size=10,mtime=1", at(90*24*time.Hour)), first.ID)

	// Changed: submitted.
	changed := rinv("f", "watched/report.pdf", "size=11,mtime=2", at(91*24*time.Hour))
	b.enqueue(changed)
	b.wantState(changed.ID, fnhost.StatePending)
	b.wantReceipts("f", []string{"watched/report.pdf"}, map[string]string{"watched/report.pdf": "size=11,mtime=2"})
}

func testForgetReceipts(t *testing.T, b *bundle) {
	a := rinv("f", "in/a", "v1", at(0))
	c := rinv("f", "in/c", "v1", at(0))
	g := rinv("g", "in/a", "v1", at(0))
	b.enqueue(a, c, g)

	if err := b.s.ForgetReceipts(b.ctx, "f", []string{"in/a", "in/missing"}); err != nil {
		t.Fatalf("ForgetReceipts: %v", err)
	}
	b.wantReceipts("f", []string{"in/a", "in/c"}, map[string]string{"in/c": "v1"})
	b.wantReceipts("g", []string{"in/a"}, map[string]string{"in/a": "v1"})
	b.wantState(a.ID, fnhost.StatePending) // the invocation stays

	// The object came back, same version: it runs again.
	again := rinv("f", "in/a", "v1", at(time.Second))
	b.enqueue(again)
	b.wantReceipts("f", []string{"in/a"}, map[string]string{"in/a": "v1"})
	b.wantDuplicateOf("after it came back", rinv("f", "in/a", "v1", at(2*time.Second)), again.ID)
	b.wantDuplicateOf("not forgotten", rinv("f", "in/c", "v1", at(2*time.Second)), c.ID)
	b.wantDuplicateOf("other function", rinv("g", "in/a", "v1", at(2*time.Second)), g.ID)

	if err := b.s.ForgetReceipts(b.ctx, "f", nil); err != nil {
		t.Fatalf("ForgetReceipts(nil): %v", err)
	}
	// Many keys in one call.
	var invs []store.NewInvocation
	var keys []string
	for i := range 1500 {
		key := fmt.Sprintf("bulk/%04d", i)
		keys = append(keys, key)
		invs = append(invs, rinv("h", key, "v1", at(time.Duration(i)*time.Millisecond)))
	}
	b.enqueue(invs...)
	if err := b.s.ForgetReceipts(b.ctx, "h", keys[:1499]); err != nil {
		t.Fatalf("ForgetReceipts of 1499 keys: %v", err)
	}
	b.wantReceipts("h", keys, map[string]string{"bulk/1499": "v1"})
}

func testReceiptsLookupMany(t *testing.T, b *bundle) {
	const n = 3000
	invs := make([]store.NewInvocation, 0, n+10)
	keys := make([]string, 0, n+n/5)
	want := make(map[string]string, n)
	for i := range n {
		key := fmt.Sprintf("bucket/obj-%05d", i)
		version := fmt.Sprintf("etag-%d", i)
		invs = append(invs, rinv("f", key, version, at(time.Duration(i)*time.Millisecond)))
		keys = append(keys, key)
		want[key] = version
		if i%5 == 0 {
			keys = append(keys, fmt.Sprintf("bucket/missing-%05d", i))
		}
	}
	wantG := map[string]string{}
	for i := range 10 {
		key := fmt.Sprintf("bucket/obj-%05d", i)
		invs = append(invs, rinv("g", key, "g-etag", at(time.Second)))
		wantG[key] = "g-etag"
	}
	b.enqueue(invs...)

	b.wantReceipts("f", keys, want)
	b.wantReceipts("g", keys, wantG)
	// Repeated keys, and a lookup of none.
	b.wantReceipts("f", []string{"bucket/obj-00007", "bucket/obj-00007", "nope"}, map[string]string{"bucket/obj-00007": "etag-7"})
	b.wantReceipts("f", nil, map[string]string{})
	b.wantReceipts("nobody", keys[:100], map[string]string{})

	// A rescan of the same listing: every object is a duplicate of its invocation.
	again := make([]store.NewInvocation, n)
	for i := range again {
		again[i] = rinv("f", invs[i].ReceiptKey, invs[i].ReceiptVersion, at(time.Hour))
	}
	res := b.enqueueResults(again...)
	for i := range res {
		if res[i] != (store.EnqueueResult{ID: invs[i].ID, Duplicate: true}) {
			t.Fatalf("rescan result %d: %+v, want duplicate of %s", i, res[i], invs[i].ID)
		}
	}
}

func testReceiptKeys(t *testing.T, b *bundle) {
	fKeys := []string{"in/z", "in/a", "in/c/d", "in/\u00e9", "in/b", "in", "in0", "im/x", "io/x", "IN/x"}
	var invs []store.NewInvocation
	for i, k := range fKeys {
		invs = append(invs, rinv("f", k, "v1", at(time.Duration(i)*time.Millisecond)))
	}
	invs = append(invs, rinv("g", "in/q", "v1", at(0)))
	b.enqueue(invs...)

	// Paging through a prefix, in byte order ("é" is after "z").
	wantIDs(t, "page 1", b.receiptKeys("f", "in/", "", 2), []string{"in/a", "in/b"})
	wantIDs(t, "page 2", b.receiptKeys("f", "in/", "in/b", 2), []string{"in/c/d", "in/z"})
	wantIDs(t, "page 3", b.receiptKeys("f", "in/", "in/z", 2), []string{"in/\u00e9"})
	wantIDs(t, "page 4", b.receiptKeys("f", "in/", "in/\u00e9", 2), nil)
	wantIDs(t, "whole prefix", b.receiptKeys("f", "in/", "", 100), []string{"in/a", "in/b", "in/c/d", "in/z", "in/\u00e9"})

	// after need not be a key, and may sort before the prefix or after its keys.
	wantIDs(t, "after a non-key", b.receiptKeys("f", "in/", "in/c", 10), []string{"in/c/d", "in/z", "in/\u00e9"})
	wantIDs(t, "after before the prefix", b.receiptKeys("f", "in/", "a", 10), []string{"in/a", "in/b", "in/c/d", "in/z", "in/\u00e9"})
	wantIDs(t, "after past the prefix", b.receiptKeys("f", "in/", "zzz", 10), nil)

	// No prefix: every key of the function; a prefix that is a key itself.
	wantIDs(t, "no prefix", b.receiptKeys("f", "", "", 100),
		[]string{"IN/x", "im/x", "in", "in/a", "in/b", "in/c/d", "in/z", "in/\u00e9", "in0", "io/x"})
	wantIDs(t, "no prefix, after", b.receiptKeys("f", "", "in/z", 3), []string{"in/\u00e9", "in0", "io/x"})
	wantIDs(t, "prefix in", b.receiptKeys("f", "in", "", 100), []string{"in", "in/a", "in/b", "in/c/d", "in/z", "in/\u00e9", "in0"})
	wantIDs(t, "prefix in/c", b.receiptKeys("f", "in/c", "", 100), []string{"in/c/d"})

	wantIDs(t, "limit 0", b.receiptKeys("f", "in/", "", 0), nil)
	wantIDs(t, "other function", b.receiptKeys("g", "in/", "", 10), []string{"in/q"})
	wantIDs(t, "unknown prefix", b.receiptKeys("f", "nope/", "", 10), nil)
	wantIDs(t, "unknown function", b.receiptKeys("nobody", "", "", 10), nil)

	if err := b.s.ForgetReceipts(b.ctx, "f", []string{"in/b", "in/z"}); err != nil {
		t.Fatalf("ForgetReceipts: %v", err)
	}
	wantIDs(t, "after forgetting", b.receiptKeys("f", "in/", "", 100), []string{"in/a", "in/c/d", "in/\u00e9"})
}

func testReceiptsAndDedup(t *testing.T, b *bundle) {
	a := rinv("f", "obj", "v1", at(0))
	a.DedupKey = "d1"
	b.enqueue(a)

	// The dedup key makes it a duplicate: the receipt is left as it was.
	byDedup := rinv("f", "obj", "v2", at(time.Second))
	byDedup.DedupKey = "d1"
	b.wantDuplicateOf("duplicate dedup key, new version", byDedup, a.ID)
	b.wantReceipts("f", []string{"obj"}, map[string]string{"obj": "v1"})
	b.wantDuplicateOf("v1 without dedup key", rinv("f", "obj", "v1", at(2*time.Second)), a.ID)

	// The receipt makes it a duplicate: its dedup key is not taken.
	byReceipt := rinv("f", "obj", "v1", at(3*time.Second))
	byReceipt.DedupKey = "d2"
	b.wantDuplicateOf("same version, new dedup key", byReceipt, a.ID)
	d2 := newInv("f", at(4*time.Second))
	d2.DedupKey = "d2"
	b.enqueue(d2)

	// Both new: stored, and the receipt moves.
	both := rinv("f", "obj", "v3", at(5*time.Second))
	both.DedupKey = "d3"
	b.enqueue(both)
	b.wantReceipts("f", []string{"obj"}, map[string]string{"obj": "v3"})
	got := b.get(both.ID)
	wantEq(t, "dedup_key", got.DedupKey, "d3")

	// In one batch: a dedup duplicate does not write its receipt for the rows after it.
	x := rinv("f", "batch/x", "v1", at(6*time.Second))
	x.DedupKey = "batch"
	y := rinv("f", "batch/y", "v1", at(6*time.Second))
	y.DedupKey = "batch"
	z := rinv("f", "batch/y", "v1", at(6*time.Second))
	b.wantEnqueue("batch", []store.NewInvocation{x, y, z},
		[]store.EnqueueResult{{ID: x.ID}, {ID: x.ID, Duplicate: true}, {ID: z.ID}})
	b.wantNotFound(y.ID)
	b.wantReceipts("f", []string{"batch/x", "batch/y"}, map[string]string{"batch/x": "v1", "batch/y": "v1"})
	b.wantDuplicateOf("y after the batch", rinv("f", "batch/y", "v1", at(7*time.Second)), z.ID)
}

func testReceiptsInOneBatch(t *testing.T, b *bundle) {
	// Plain invocations around the receipts, so that both kinds share the call.
	var invs []store.NewInvocation
	var want []store.EnqueueResult
	plain := func(n int) {
		for range n {
			inv := newInv("plain", at(0))
			invs = append(invs, inv)
			want = append(want, store.EnqueueResult{ID: inv.ID})
		}
	}
	plain(70)
	x := rinv("f", "k1", "v1", at(time.Second))
	y := rinv("f", "k1", "v1", at(time.Second))
	z := rinv("f", "k1", "v2", at(time.Second))
	w := rinv("f", "k2", "v1", at(time.Second))
	v := rinv("g", "k1", "v1", at(time.Second))
	zz := rinv("f", "k1", "v2", at(time.Second))
	invs = append(invs, x, y, z, w, v, zz)
	want = append(want,
		store.EnqueueResult{ID: x.ID},
		store.EnqueueResult{ID: x.ID, Duplicate: true},
		store.EnqueueResult{ID: z.ID},
		store.EnqueueResult{ID: w.ID},
		store.EnqueueResult{ID: v.ID},
		store.EnqueueResult{ID: z.ID, Duplicate: true})
	plain(10)
	b.wantEnqueue("batch", invs, want)
	b.wantNotFound(y.ID)
	b.wantNotFound(zz.ID)
	b.wantReceipts("f", []string{"k1", "k2"}, map[string]string{"k1": "v2", "k2": "v1"})
	b.wantReceipts("g", []string{"k1", "k2"}, map[string]string{"k1": "v1"})
	b.wantDuplicateOf("k1 v2 after the batch", rinv("f", "k1", "v2", at(time.Minute)), z.ID)

	st, err := b.s.Stats(b.ctx, at(time.Minute))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	wantEq(t, "pending", st.ByState[fnhost.StatePending], 80+4)
}

func testSkipChildrenOfDuplicates(t *testing.T, b *bundle) {
	// By dedup key: the parent is a duplicate, so are its continuations and theirs,
	// even far down the call.
	p := newInv("p", at(0))
	p.DedupKey = "job-1"
	b.enqueue(p)
	p2 := newInv("p", at(time.Second))
	p2.DedupKey = "job-1"
	child := thenOf(p2, "p-then")
	grandchild := thenOf(child, "p-then-then")
	alert := newInv("p-alert", at(time.Second))
	alert.Awaiting, alert.ParentID, alert.Continuation = true, p2.ID, fnhost.ContinueOnFailure
	withReceipt := thenOf(p2, "p-receipt")
	withReceipt.ReceiptKey, withReceipt.ReceiptVersion = "obj", "v1"
	withDedup := thenOf(child, "p-dedup")
	withDedup.DedupKey = "child-key"
	q := newInv("q", at(time.Second))
	qChild := thenOf(q, "q-then")
	qGrandchild := thenOf(qChild, "q-then-then")

	invs := []store.NewInvocation{p2, child, alert, withReceipt, q}
	want := []store.EnqueueResult{{ID: p.ID, Duplicate: true}, {ID: child.ID, Duplicate: true},
		{ID: alert.ID, Duplicate: true}, {ID: withReceipt.ID, Duplicate: true}, {ID: q.ID}}
	// Plain invocations, then more continuations, none with a receipt: a store that
	// writes in chunks must still skip them.
	for range 70 {
		inv := newInv("filler", at(time.Second))
		invs = append(invs, inv)
		want = append(want, store.EnqueueResult{ID: inv.ID})
	}
	invs = append(invs, qChild, grandchild, withDedup, qGrandchild)
	want = append(want, store.EnqueueResult{ID: qChild.ID}, store.EnqueueResult{ID: grandchild.ID, Duplicate: true},
		store.EnqueueResult{ID: withDedup.ID, Duplicate: true}, store.EnqueueResult{ID: qGrandchild.ID})
	b.wantEnqueue("dedup duplicate with continuations", invs, want)
	for _, id := range []string{p2.ID, child.ID, grandchild.ID, alert.ID, withReceipt.ID, withDedup.ID} {
		b.wantNotFound(id)
	}
	b.wantState(qChild.ID, fnhost.StateAwaiting)
	b.wantState(qGrandchild.ID, fnhost.StateAwaiting)
	// The skipped ones wrote nothing: no receipt, no dedup key.
	b.wantReceipts("p-receipt", []string{"obj"}, map[string]string{})
	dedupNow := newInv("p-dedup", at(2*time.Second))
	dedupNow.DedupKey = "child-key"
	b.enqueue(dedupNow)
	// No orphan awaits a parent that is not stored.
	page, err := b.s.List(b.ctx, store.Filter{State: fnhost.StateAwaiting})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantSameIDs(t, "awaiting", ids(page.Items), []string{qChild.ID, qGrandchild.ID})

	// By id: a retried call whose parent is stored skips continuations it did not store.
	r := newInv("r", at(3*time.Second))
	b.enqueue(r)
	rChild := thenOf(r, "r-then")
	b.wantEnqueue("stored id with a continuation", []store.NewInvocation{r, rChild},
		[]store.EnqueueResult{{ID: r.ID, Duplicate: true}, {ID: rChild.ID, Duplicate: true}})
	b.wantNotFound(rChild.ID)

	// By receipt.
	s := rinv("s", "in/a", "v1", at(4*time.Second))
	b.enqueue(s)
	s2 := rinv("s", "in/a", "v1", at(5*time.Second))
	s2Child := thenOf(s2, "s-then")
	s2Grandchild := thenOf(s2Child, "s-then-then")
	b.wantEnqueue("receipt duplicate with continuations", []store.NewInvocation{s2, s2Child, s2Grandchild},
		[]store.EnqueueResult{{ID: s.ID, Duplicate: true}, {ID: s2Child.ID, Duplicate: true}, {ID: s2Grandchild.ID, Duplicate: true}})
	b.wantNotFound(s2Child.ID)
	b.wantNotFound(s2Grandchild.ID)

	// A new version with its continuation: both stored.
	s3 := rinv("s", "in/a", "v2", at(6*time.Second))
	s3Child := thenOf(s3, "s-then")
	b.enqueue(s3, s3Child)
	got := b.wantState(s3Child.ID, fnhost.StateAwaiting)
	wantStr(t, "parent_id", got.ParentID, s3.ID)

	// Spawned in a completion: a duplicate's continuations are skipped there too.
	b.claimReq(store.ClaimRequest{Owner: "w", Now: at(time.Minute), LeaseUntil: at(time.Hour), Limit: 1, Functions: []string{"r"}})
	msg := newInv("orders", at(time.Minute))
	msg.DedupKey = "order-1"
	b.enqueue(msg)
	msg2 := newInv("orders", at(time.Minute))
	msg2.DedupKey = "order-1"
	msgChild := thenOf(msg2, "orders-then")
	dropped := b.complete(store.Completion{
		ID: r.ID, Owner: "w", State: fnhost.StateSucceeded,
		Attempt: fnhost.Attempt{StartedAt: at(time.Minute), FinishedAt: at(2 * time.Minute), Outcome: fnhost.OutcomeSucceeded},
		Spawn:   []store.NewInvocation{msg2, msgChild},
	})
	if len(dropped) != 0 {
		t.Fatalf("Complete dropped %v", dropped)
	}
	b.wantNotFound(msg2.ID)
	b.wantNotFound(msgChild.ID)
}
