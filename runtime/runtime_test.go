package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
)

func TestBackoff(t *testing.T) {
	exp := manifest.Retry{Backoff: "exponential", InitialInterval: time.Second, MaxInterval: 10 * time.Second}
	fixed := manifest.Retry{Backoff: "fixed", InitialInterval: 3 * time.Second, MaxInterval: time.Minute}
	jit := manifest.Retry{Backoff: "exponential", InitialInterval: time.Second, MaxInterval: time.Minute, Jitter: 0.5}
	for _, c := range []struct {
		p    manifest.Retry
		n    int
		r    float64
		want time.Duration
	}{
		{exp, 1, 0.5, time.Second},
		{exp, 2, 0.5, 2 * time.Second},
		{exp, 3, 0.5, 4 * time.Second},
		{exp, 4, 0.5, 8 * time.Second},
		{exp, 5, 0.5, 10 * time.Second}, // capped
		{exp, 60, 0.5, 10 * time.Second},
		{fixed, 1, 0.5, 3 * time.Second},
		{fixed, 7, 0.5, 3 * time.Second},
		{jit, 2, 0, time.Second},                       // 2s − 50%
		{jit, 2, 0.5, 2 * time.Second},                 // the nominal delay
		{jit, 2, 0.999999, 2999998 * time.Microsecond}, // 2s + 50%
		{jit, 10, 0.999999, time.Minute},               // jitter never exceeds the cap
	} {
		if got := runtime.Backoff(c.p, c.n, c.r); got.Round(time.Microsecond) != c.want {
			t.Errorf("Backoff(%s, attempt %d, r=%v) = %s, want %s", c.p.Backoff, c.n, c.r, got, c.want)
		}
	}
}

// bundle is a runtime on a real SQLite store, with functions built from Go closures.
type bundle struct {
	rt *runtime.Runtime
	st store.Store
}

type fnSpec struct {
	name        string
	fn          fnhost.HandlerFunc
	attempts    int
	timeout     time.Duration
	concurrency int
	then        []string
	onFailure   string
}

func setup(t *testing.T, cfg runtime.Config, specs ...fnSpec) *bundle {
	t.Helper()
	return setupAfter(t, nil, cfg, specs...)
}

// setupAfter is setup with before run on the store before the runtime starts.
func setupAfter(t *testing.T, before func(st store.Store), cfg runtime.Config, specs ...fnSpec) *bundle {
	t.Helper()
	st := runtimetest.OpenStore(t, sqlite.Options{})
	if before != nil {
		before(st)
	}
	for _, s := range specs {
		if s.attempts == 0 {
			s.attempts = 3
		}
		if s.timeout == 0 {
			s.timeout = 10 * time.Second
		}
		cfg.Functions = append(cfg.Functions, &runtime.Function{
			Name: s.name, Handler: s.fn, Timeout: s.timeout, Concurrency: s.concurrency, Then: s.then, OnFailure: s.onFailure,
			Retry: manifest.Retry{MaxAttempts: s.attempts, Backoff: "fixed", InitialInterval: 10 * time.Millisecond},
		})
	}
	cfg.Store = st
	return &bundle{rt: runtimetest.Start(t, cfg), st: st}
}

func (b *bundle) submit(t *testing.T, function string, data string) string {
	t.Helper()
	res, err := b.rt.Submit(context.Background(), fnhost.Submission{
		Function: function, Trigger: "test", Event: fnhost.NewEvent("test", "test", "", json.RawMessage(data)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].ID
}

func (b *bundle) wait(t *testing.T, id string) *fnhost.Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.rt.Wait(ctx, id); err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	inv, err := b.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func outcomes(inv *fnhost.Invocation) string {
	var s []string
	for _, a := range inv.Attempts {
		s = append(s, string(a.Outcome))
	}
	return strings.Join(s, ",")
}

func TestSuccessRecordsOutputAndLog(t *testing.T) {
	b := setup(t, runtime.Config{}, fnSpec{name: "hi", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		info, _ := fnhost.InfoFrom(ctx)
		fnhost.Logf(ctx, "hello from attempt %d of %s", info.Attempt, info.InvocationID)
		return fnhost.Result{Output: ev.Data}, nil
	}})
	id := b.submit(t, "hi", `{"a":1}`)
	inv := b.wait(t, id)
	if inv.State != fnhost.StateSucceeded || string(inv.Output) != `{"a":1}` || inv.Attempt != 1 {
		t.Fatalf("state %s output %s attempt %d", inv.State, inv.Output, inv.Attempt)
	}
	if got := inv.Attempts[0].Log; got != "hello from attempt 1 of "+id+"\n" {
		t.Fatalf("log %q", got)
	}
	if inv.FinishedAt == nil || inv.StartedAt == nil {
		t.Fatal("finished_at or started_at not set")
	}
}

func TestRetryUntilSuccess(t *testing.T) {
	b := setup(t, runtime.Config{}, fnSpec{name: "flaky", attempts: 5, fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		info, _ := fnhost.InfoFrom(ctx)
		if info.Attempt < 3 {
			return fnhost.Result{}, errors.New("not yet")
		}
		return fnhost.Result{Output: []byte("plain text")}, nil
	}})
	inv := b.wait(t, b.submit(t, "flaky", `null`))
	if inv.State != fnhost.StateSucceeded || outcomes(inv) != "failed,failed,succeeded" {
		t.Fatalf("state %s attempts %s", inv.State, outcomes(inv))
	}
	if string(inv.Output) != `"plain text"` {
		t.Fatalf("non-JSON output stored as %s, want a JSON string", inv.Output)
	}
	if inv.Attempts[0].Error != "not yet" {
		t.Fatalf("attempt error %q", inv.Attempts[0].Error)
	}
}

func TestExhaustedAndPermanentFailures(t *testing.T) {
	var alerts atomic.Int32
	b := setup(t, runtime.Config{},
		fnSpec{name: "always", attempts: 3, onFailure: "alert", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			return fnhost.Result{}, errors.New("boom")
		}},
		fnSpec{name: "perm", attempts: 5, fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			return fnhost.Result{}, fnhost.Permanent(errors.New("bad input"))
		}},
		fnSpec{name: "alert", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			alerts.Add(1)
			return fnhost.Result{Output: ev.Data}, nil
		}},
	)
	inv := b.wait(t, b.submit(t, "always", `{}`))
	if inv.State != fnhost.StateFailed || outcomes(inv) != "failed,failed,failed" || *inv.Error != "boom" {
		t.Fatalf("always: state %s attempts %s", inv.State, outcomes(inv))
	}
	inv = b.wait(t, b.submit(t, "perm", `{}`))
	if inv.State != fnhost.StateFailed || outcomes(inv) != "failed" {
		t.Fatalf("perm: state %s attempts %s, want one failed attempt", inv.State, outcomes(inv))
	}
	// on_failure ran exactly once, for "always", with the failure as data.
	page, err := b.st.List(context.Background(), store.Filter{Function: "alert"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("alert invocations: %v %d", err, len(page.Items))
	}
	alert := b.wait(t, page.Items[0].ID)
	var data struct {
		InvocationID string `json:"invocation_id"`
		Error        string `json:"error"`
		Attempts     int    `json:"attempts"`
	}
	if err := json.Unmarshal(alert.Output, &data); err != nil || data.Error != "boom" || data.Attempts != 3 || *alert.ParentID != data.InvocationID {
		t.Fatalf("alert data %s (%v)", alert.Output, err)
	}
	if alerts.Load() != 1 {
		t.Fatalf("alert ran %d times", alerts.Load())
	}
}

func TestTimeoutAndPanic(t *testing.T) {
	b := setup(t, runtime.Config{},
		fnSpec{name: "stuck", attempts: 1, timeout: 100 * time.Millisecond, fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			<-ctx.Done()
			return fnhost.Result{}, ctx.Err()
		}},
		fnSpec{name: "boom", attempts: 1, fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			panic("boom")
		}},
	)
	inv := b.wait(t, b.submit(t, "stuck", `{}`))
	if inv.State != fnhost.StateFailed || outcomes(inv) != "timeout" || !strings.Contains(*inv.Error, "timed out after 100ms") {
		t.Fatalf("stuck: state %s attempts %s error %v", inv.State, outcomes(inv), inv.Error)
	}
	inv = b.wait(t, b.submit(t, "boom", `{}`))
	if inv.State != fnhost.StateFailed || !strings.Contains(*inv.Error, "panicked") || !strings.Contains(inv.Attempts[0].Log, "runtime_test.go") {
		t.Fatalf("boom: state %s error %v log %q", inv.State, inv.Error, inv.Attempts[0].Log)
	}
}

func TestConcurrencyCaps(t *testing.T) {
	var mu sync.Mutex
	running := map[string]int{}
	peak := map[string]int{}
	total := 0
	peakTotal := 0
	work := func(name string) fnhost.HandlerFunc {
		return func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			mu.Lock()
			running[name]++
			total++
			peak[name] = max(peak[name], running[name])
			peakTotal = max(peakTotal, total)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			running[name]--
			total--
			mu.Unlock()
			return fnhost.Result{}, nil
		}
	}
	b := setup(t, runtime.Config{Workers: 5},
		fnSpec{name: "capped", concurrency: 2, fn: work("capped")},
		fnSpec{name: "free", fn: work("free")},
	)
	var ids []string
	for range 20 {
		ids = append(ids, b.submit(t, "capped", `{}`), b.submit(t, "free", `{}`))
	}
	for _, id := range ids {
		if inv := b.wait(t, id); inv.State != fnhost.StateSucceeded {
			t.Fatalf("%s: %s", id, inv.State)
		}
	}
	if peak["capped"] != 2 {
		t.Errorf("capped function peaked at %d concurrent, want 2", peak["capped"])
	}
	if peakTotal > 5 || peakTotal < 3 {
		t.Errorf("host peaked at %d concurrent handlers, want between 3 and the cap of 5", peakTotal)
	}
}

func TestContinuationChain(t *testing.T) {
	release := make(chan struct{})
	b := setup(t, runtime.Config{},
		fnSpec{name: "first", then: []string{"second"}, fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			<-release
			return fnhost.Result{Output: []byte(`{"step":1}`)}, nil
		}},
		fnSpec{name: "second", then: []string{"third"}, fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			return fnhost.Result{Output: []byte(`{"saw":` + string(ev.Data) + `}`)}, nil
		}},
		fnSpec{name: "third", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			return fnhost.Result{Output: ev.Data}, nil
		}},
	)
	id := b.submit(t, "first", `{}`)
	page, err := b.st.List(context.Background(), store.Filter{Function: "second"})
	if err != nil || len(page.Items) != 1 || page.Items[0].State != fnhost.StateAwaiting || *page.Items[0].ParentID != id {
		t.Fatalf("second should await first: %v %+v", err, page.Items)
	}
	second := page.Items[0].ID
	close(release)
	inv := b.wait(t, second)
	if string(inv.Output) != `{"saw":{"step":1}}` {
		t.Fatalf("second output %s", inv.Output)
	}
	page, _ = b.st.List(context.Background(), store.Filter{ParentID: second})
	if len(page.Items) != 1 {
		t.Fatalf("third: %d invocations", len(page.Items))
	}
	if third := b.wait(t, page.Items[0].ID); string(third.Output) != `{"saw":{"step":1}}` {
		t.Fatalf("third output %s", third.Output)
	}
}

func TestCancelRunning(t *testing.T) {
	started := make(chan struct{})
	var sawCancel atomic.Bool
	b := setup(t, runtime.Config{}, fnSpec{name: "long", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		close(started)
		<-ctx.Done()
		sawCancel.Store(true)
		return fnhost.Result{}, ctx.Err()
	}})
	id := b.submit(t, "long", `{}`)
	<-started
	if _, err := b.rt.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	inv := b.wait(t, id)
	if inv.State != fnhost.StateCancelled {
		t.Fatalf("state %s", inv.State)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !sawCancel.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !sawCancel.Load() {
		t.Fatal("the handler's context was not cancelled")
	}
}

func TestLogTruncation(t *testing.T) {
	b := setup(t, runtime.Config{MaxLogBytes: 100}, fnSpec{name: "chatty", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		for i := range 50 {
			fnhost.Logf(ctx, "line %02d", i)
		}
		return fnhost.Result{}, nil
	}})
	inv := b.wait(t, b.submit(t, "chatty", `{}`))
	a := inv.Attempts[0]
	if !a.LogTruncated || !strings.HasPrefix(a.Log, "line 00\nline 01\n") || !strings.Contains(a.Log, "log truncated") || strings.Contains(a.Log, "line 49") {
		t.Fatalf("truncated=%v log %q", a.LogTruncated, a.Log)
	}
}

// TestLongJobKeepsLease: a handler running far longer than the lease is never rescued,
// because the heartbeat renews it.
func TestLongJobKeepsLease(t *testing.T) {
	b := setup(t, runtime.Config{Lease: time.Second}, fnSpec{name: "long", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		select {
		case <-time.After(2500 * time.Millisecond):
			return fnhost.Result{}, nil
		case <-ctx.Done():
			return fnhost.Result{}, ctx.Err()
		}
	}})
	id := b.submit(t, "long", `{}`)
	// Another host's maintenance would call Rescue; do so as often as it could.
	stop := make(chan struct{})
	var rescued atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				n, _ := b.st.Rescue(context.Background(), time.Now().UTC())
				rescued.Add(int64(n))
			}
		}
	}()
	inv := b.wait(t, id)
	close(stop)
	if rescued.Load() != 0 || inv.State != fnhost.StateSucceeded || outcomes(inv) != "succeeded" {
		t.Fatalf("rescued %d, state %s, attempts %s", rescued.Load(), inv.State, outcomes(inv))
	}
}

// TestStopReleases: Stop past its deadline hands running work back as pending.
func TestStopReleases(t *testing.T) {
	started := make(chan struct{})
	b := setup(t, runtime.Config{}, fnSpec{name: "long", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		close(started)
		<-ctx.Done()
		return fnhost.Result{}, ctx.Err()
	}})
	id := b.submit(t, "long", `{}`)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	inv, err := b.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if inv.State != fnhost.StatePending || outcomes(inv) != "released" {
		t.Fatalf("after stop: state %s attempts %s", inv.State, outcomes(inv))
	}
	if _, err := b.rt.Submit(context.Background(), fnhost.Submission{Function: "long"}); !errors.Is(err, runtime.ErrStopped) {
		t.Fatalf("submit after stop: %v", err)
	}
}

func TestInvokeRunsInline(t *testing.T) {
	var runs atomic.Int32
	b := setup(t, runtime.Config{Workers: 1}, fnSpec{name: "echo", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		runs.Add(1)
		return fnhost.Result{Output: ev.Data}, nil
	}})
	for i := range 20 {
		inv, err := b.rt.Invoke(context.Background(), fnhost.Submission{
			Function: "echo", Trigger: "test", Event: fnhost.NewEvent("t", "t", "", json.RawMessage(`{"i":1}`)),
		}, 10*time.Second)
		if err != nil || inv.State != fnhost.StateSucceeded || string(inv.Output) != `{"i":1}` {
			t.Fatalf("invoke %d: %v %+v", i, err, inv)
		}
		stored, _ := b.st.Get(context.Background(), inv.ID)
		if stored.State != fnhost.StateSucceeded || len(stored.Attempts) != 1 {
			t.Fatalf("stored: %s with %d attempts", stored.State, len(stored.Attempts))
		}
	}
	if runs.Load() != 20 {
		t.Fatalf("the handler ran %d times for 20 invocations", runs.Load())
	}
	if _, err := b.rt.Invoke(context.Background(), fnhost.Submission{Function: "nope"}, time.Second); !errors.Is(err, runtime.ErrUnknownFunction) {
		t.Fatalf("unknown function: %v", err)
	}
}

// TestLostAttemptsCount: an invocation whose attempts were all lost with their host is
// failed, not run again forever.
func TestLostAttemptsCount(t *testing.T) {
	var runs atomic.Int32
	id := fnhost.NewID()
	// Before this runtime starts (it would take the invocation between the rescues),
	// another host claims it twice and dies each time.
	deadHost := func(st store.Store) {
		now := time.Now().UTC()
		if _, err := st.Enqueue(context.Background(), []store.NewInvocation{{
			ID: id, Function: "crashy", Trigger: "test", Event: json.RawMessage(`{"specversion":"1.0","id":"x","source":"t","type":"t"}`),
			MaxAttempts: 2, CreatedAt: now, RunAt: now.Add(time.Hour),
		}}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			later := now.Add(2 * time.Hour)
			claimed, err := st.Claim(context.Background(), store.ClaimRequest{Owner: "dead-host", Now: later, LeaseUntil: later, Limit: 1, Functions: []string{"crashy"}})
			if err != nil || len(claimed) != 1 {
				t.Fatalf("claim as the dead host: %v %d", err, len(claimed))
			}
			if _, err := st.Rescue(context.Background(), later.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := setupAfter(t, deadHost, runtime.Config{}, fnSpec{name: "crashy", attempts: 2, onFailure: "alert", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		runs.Add(1)
		return fnhost.Result{}, nil
	}}, fnSpec{name: "alert", fn: func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		return fnhost.Result{}, nil
	}})
	// Rescued, it is pending again: this runtime claims it as attempt 3 of 2.
	inv := b.wait(t, id)
	if inv.State != fnhost.StateFailed || outcomes(inv) != "lost,lost,failed" || !strings.Contains(*inv.Error, "attempts exhausted") {
		t.Fatalf("state %s attempts %s error %v", inv.State, outcomes(inv), inv.Error)
	}
	if runs.Load() != 0 {
		t.Fatalf("the handler ran %d times past the attempt budget", runs.Load())
	}
	page, _ := b.st.List(context.Background(), store.Filter{Function: "alert", ParentID: id})
	if len(page.Items) != 1 {
		t.Fatalf("on_failure ran %d times, want once", len(page.Items))
	}
}
