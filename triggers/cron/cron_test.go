package cron

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
)

// bundle is a runtime on a real SQLite store with one function, fn, that cron
// triggers fire.
type bundle struct {
	fn string
	rt *runtime.Runtime
	st store.Store
}

func setup(t *testing.T, fn string, h fnhost.HandlerFunc) *bundle {
	t.Helper()
	// Several triggers and the test read at once: more read connections than cores.
	st := runtimetest.OpenStore(t, sqlite.Options{ReadConns: 8})
	if h == nil {
		h = func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
			return fnhost.Result{Output: ev.Data}, nil
		}
	}
	rt := runtimetest.Start(t, runtime.Config{
		Store: st, Workers: 8,
		Functions: []*runtime.Function{{Name: fn, Handler: h, Timeout: time.Minute, Retry: manifest.Retry{MaxAttempts: 1}}},
	})
	return &bundle{fn: fn, rt: rt, st: st}
}

func (b *bundle) trigger(t *testing.T, ct manifest.CronTrigger) *Trigger {
	t.Helper()
	tr, err := triggers.New(triggers.Env{
		Function: &manifest.Function{Name: b.fn}, Trigger: manifest.Trigger{Kind: "cron", Cron: &ct},
		Submitter: b.rt, Store: b.st, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr.(*Trigger)
}

// run runs tr until the test ends (or stop is called).
func run(t *testing.T, tr *Trigger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := tr.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fired is one invocation made by a cron trigger, read back from the store.
type fired struct {
	id    string
	state fnhost.State
	ev    fnhost.Event
	data  tick
	slot  time.Time
}

// ticks returns the invocations of b.fn, oldest slot first.
func (b *bundle) ticks(t *testing.T) []fired {
	t.Helper()
	ctx := context.Background()
	var items []*fnhost.Invocation
	for cursor := ""; ; {
		page, err := b.st.List(ctx, store.Filter{Function: b.fn, Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	out := make([]fired, 0, len(items))
	for _, item := range items {
		inv, err := b.st.Get(ctx, item.ID)
		if err != nil {
			t.Fatal(err)
		}
		f := fired{id: inv.ID, state: inv.State}
		if err := json.Unmarshal(inv.Event, &f.ev); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(f.ev.Data, &f.data); err != nil {
			t.Fatal(err)
		}
		if f.slot, err = time.Parse(time.RFC3339, f.data.Slot); err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b fired) int { return a.slot.Compare(b.slot) })
	return out
}

func split(fs []fired) (onTime, pastDue []fired) {
	for _, f := range fs {
		if f.data.PastDue {
			pastDue = append(pastDue, f)
		} else {
			onTime = append(onTime, f)
		}
	}
	return onTime, pastDue
}

func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkUniqueConsecutive fails unless the slots are distinct and step apart.
func checkUniqueConsecutive(t *testing.T, what string, fs []fired, step time.Duration) {
	t.Helper()
	for i := 1; i < len(fs); i++ {
		if d := fs[i].slot.Sub(fs[i-1].slot); d != step {
			t.Errorf("%s: slot %s follows %s (%s apart, want %s)", what, fmtSlot(fs[i].slot), fmtSlot(fs[i-1].slot), d, step)
		}
	}
}

// counters reads the slot counters of fn relative to their values when it was called,
// so that a test holds with -count above 1.
func counters(fn string) func(outcome string) float64 {
	base := map[string]float64{}
	for _, o := range outcomes {
		base[o] = metric(fn, o)
	}
	return func(outcome string) float64 { return metric(fn, outcome) - base[outcome] }
}

func metric(fn, outcome string) float64 {
	var m dto.Metric
	if err := slotsTotal.WithLabelValues(fn, outcome).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// seed stores a state whose last slot is ago before the current second.
func seed(t *testing.T, b *bundle, tr *Trigger, ago time.Duration) time.Time {
	t.Helper()
	last := time.Now().Truncate(time.Second).Add(-ago).UTC()
	if err := b.st.PutState(context.Background(), tr.key, state{LastSlot: last}.encode()); err != nil {
		t.Fatal(err)
	}
	return last
}

func TestCronFiresEachSlotOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, "every", nil)
	m := counters("every")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s"})
	if next, ok := tr.NextFire(); !ok || !next.After(time.Now()) || next.After(time.Now().Add(time.Second)) {
		t.Errorf("NextFire = %s, %v: want within the next second", next, ok)
	}
	started := time.Now()
	run(t, tr)
	eventually(t, 10*time.Second, "3 slots", func() bool { return len(b.ticks(t)) >= 3 })
	fs := b.ticks(t)
	onTime, pastDue := split(fs)
	if len(pastDue) != 0 {
		t.Errorf("a first start caught up %d slots", len(pastDue))
	}
	checkUniqueConsecutive(t, "on time", onTime, time.Second)
	if !fs[0].slot.After(started) {
		t.Errorf("first slot %s is not after the start %s", fs[0].slot, started)
	}
	f := fs[0]
	if f.id != tr.slotID(f.slot) {
		t.Errorf("on-time id %s, want the slot's id %s", f.id, tr.slotID(f.slot))
	}
	if f.ev.Source != "fnhost/cron/every" || f.ev.Type != EventType || f.ev.Subject != f.data.Slot || !f.ev.Time.Equal(f.slot) {
		t.Errorf("event %+v", f.ev)
	}
	if f.data.Schedule != "@every 1s" || f.data.Timezone != "UTC" || f.data.MissedSlots != 0 || !strings.HasSuffix(f.data.Slot, "Z") {
		t.Errorf("data %+v", f.data)
	}
	inv, err := b.st.Get(context.Background(), f.id)
	if err != nil || inv.Trigger != "cron" || inv.DedupKey != tr.dedupKey(f.slot) {
		t.Errorf("invocation trigger %q dedup %q (%v)", inv.Trigger, inv.DedupKey, err)
	}
	// The state is written just after the submission.
	eventually(t, 5*time.Second, "the state to record the last slot fired", func() bool {
		raw, err := b.st.GetState(context.Background(), tr.key)
		if err != nil {
			t.Fatal(err)
		}
		st, err := decodeState(raw)
		return err == nil && !st.LastSlot.Before(fs[len(fs)-1].slot)
	})
	if got := m("fired"); got < 3 {
		t.Errorf("fired = %v", got)
	}
}

func TestCronSecondsFieldAndTimezone(t *testing.T) {
	t.Parallel()
	b := setup(t, "secs", nil)
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "*/2 * * * * *", Timezone: "America/New_York"})
	run(t, tr)
	eventually(t, 10*time.Second, "2 slots", func() bool { return len(b.ticks(t)) >= 2 })
	fs := b.ticks(t)
	checkUniqueConsecutive(t, "slots", fs, 2*time.Second)
	for _, f := range fs {
		if f.slot.Second()%2 != 0 || f.data.Timezone != "America/New_York" {
			t.Errorf("slot %s, timezone %s", f.data.Slot, f.data.Timezone)
		}
	}
}

func TestCronMissedOne(t *testing.T) {
	t.Parallel()
	b := setup(t, "one", nil)
	m := counters("one")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s", Missed: "one"})
	last := seed(t, b, tr, 5*time.Second)
	run(t, tr)
	eventually(t, 10*time.Second, "the catch-up and 2 slots on time", func() bool {
		onTime, pastDue := split(b.ticks(t))
		return len(pastDue) >= 1 && len(onTime) >= 2
	})
	fs := b.ticks(t)
	checkUniqueConsecutive(t, "all slots", fs, time.Second)
	onTime, pastDue := split(fs)
	if len(pastDue) != 1 {
		t.Fatalf("%d past-due invocations, want 1", len(pastDue))
	}
	p := pastDue[0]
	if want := onTime[0].slot.Add(-time.Second); !p.slot.Equal(want) {
		t.Errorf("catch-up for slot %s, want the last missed one %s", p.slot, want)
	}
	if want := int64(p.slot.Sub(last) / time.Second); p.data.MissedSlots != want || want < 5 {
		t.Errorf("missed_slots = %d, want %d (≥ 5)", p.data.MissedSlots, want)
	}
	if p.id == tr.slotID(p.slot) {
		t.Error("a catch-up got the on-time id of its slot")
	}
	if got, want := m("missed_dropped"), float64(p.data.MissedSlots-1); got != want {
		t.Errorf("missed_dropped = %v, want %v", got, want)
	}
	if got := m("caught_up"); got != 1 {
		t.Errorf("caught_up = %v", got)
	}
}

func TestCronMissedAll(t *testing.T) {
	t.Parallel()
	b := setup(t, "all", nil)
	m := counters("all")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s", Missed: "all"})
	last := seed(t, b, tr, 5*time.Second)
	run(t, tr)
	eventually(t, 10*time.Second, "the catch-ups and 2 slots on time", func() bool {
		onTime, pastDue := split(b.ticks(t))
		return len(pastDue) >= 5 && len(onTime) >= 2
	})
	fs := b.ticks(t)
	checkUniqueConsecutive(t, "all slots", fs, time.Second)
	onTime, pastDue := split(fs)
	if !pastDue[0].slot.Equal(last.Add(time.Second)) || !pastDue[len(pastDue)-1].slot.Equal(onTime[0].slot.Add(-time.Second)) {
		t.Errorf("caught up %s … %s; want from %s to just before %s", pastDue[0].slot, pastDue[len(pastDue)-1].slot, last.Add(time.Second), onTime[0].slot)
	}
	for _, p := range pastDue {
		if p.data.MissedSlots != int64(len(pastDue)) {
			t.Errorf("slot %s: missed_slots %d, want %d", p.data.Slot, p.data.MissedSlots, len(pastDue))
		}
	}
	if got := m("caught_up"); got != float64(len(pastDue)) {
		t.Errorf("caught_up = %v, want %d", got, len(pastDue))
	}
}

func TestCronMissedAllCapped(t *testing.T) {
	t.Parallel()
	b := setup(t, "capped", nil)
	m := counters("capped")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s", Missed: "all", Overlap: "allow"})
	last := seed(t, b, tr, 1500*time.Second)
	run(t, tr)
	eventually(t, 30*time.Second, "1000 catch-ups and a slot on time", func() bool {
		onTime, pastDue := split(b.ticks(t))
		return len(pastDue) >= MaxCatchUp && len(onTime) >= 1
	})
	onTime, pastDue := split(b.ticks(t))
	if len(pastDue) != MaxCatchUp {
		t.Fatalf("%d catch-ups, want %d", len(pastDue), MaxCatchUp)
	}
	checkUniqueConsecutive(t, "catch-ups", pastDue, time.Second)
	newest := pastDue[len(pastDue)-1].slot
	if !newest.Equal(onTime[0].slot.Add(-time.Second)) {
		t.Errorf("newest catch-up %s, first on time %s", newest, onTime[0].slot)
	}
	missed := int64(newest.Sub(last) / time.Second)
	if pastDue[0].data.MissedSlots != missed {
		t.Errorf("missed_slots = %d, want %d", pastDue[0].data.MissedSlots, missed)
	}
	if got := m("missed_dropped"); got != float64(missed-MaxCatchUp) {
		t.Errorf("missed_dropped = %v, want %d", got, missed-MaxCatchUp)
	}
}

func TestCronMissedSkip(t *testing.T) {
	t.Parallel()
	b := setup(t, "skip", nil)
	m := counters("skip")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s", Missed: "skip"})
	last := seed(t, b, tr, 5*time.Second)
	run(t, tr)
	eventually(t, 10*time.Second, "2 slots on time", func() bool { return len(b.ticks(t)) >= 2 })
	fs := b.ticks(t)
	onTime, pastDue := split(fs)
	if len(pastDue) != 0 {
		t.Errorf("%d past-due invocations with missed: skip", len(pastDue))
	}
	checkUniqueConsecutive(t, "on time", onTime, time.Second)
	if !fs[0].slot.After(last.Add(5 * time.Second)) {
		t.Errorf("first slot %s is one of the missed ones (last handled %s)", fs[0].slot, last)
	}
	if got, want := m("missed_dropped"), float64(fs[0].slot.Sub(last)/time.Second-1); got != want {
		t.Errorf("missed_dropped = %v, want %v", got, want)
	}
}

// TestReconcile: a host submitted a slot and stopped before recording it. On restart
// the slot counts as fired, not missed.
func TestCronReconcile(t *testing.T) {
	t.Parallel()
	b := setup(t, "reconcile", nil)
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s", Missed: "one", Overlap: "allow"})
	last := seed(t, b, tr, 4*time.Second)
	sub := tr.submission(last.Add(time.Second), false, 0)
	sub.ID = tr.slotID(last.Add(time.Second))
	if _, err := b.rt.Submit(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	run(t, tr)
	eventually(t, 10*time.Second, "the catch-up and a slot on time", func() bool {
		onTime, pastDue := split(b.ticks(t))
		return len(pastDue) == 1 && len(onTime) >= 2
	})
	_, pastDue := split(b.ticks(t))
	p := pastDue[0]
	if want := int64(p.slot.Sub(last.Add(time.Second)) / time.Second); p.data.MissedSlots != want {
		t.Errorf("missed_slots = %d, want %d: the recorded-late slot counted as missed", p.data.MissedSlots, want)
	}
}

func TestCronOverlapSkip(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var started []string
	b := setup(t, "overlap", func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		mu.Lock()
		started = append(started, ev.Subject)
		n := len(started)
		mu.Unlock()
		if n == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return fnhost.Result{}, nil
	})
	m := counters("overlap")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s"})
	run(t, tr)
	eventually(t, 10*time.Second, "the first invocation to start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(started) == 1
	})
	eventually(t, 10*time.Second, "2 slots skipped", func() bool { return m("skipped_overlap") >= 2 })
	if fs := b.ticks(t); len(fs) != 1 {
		t.Fatalf("%d invocations while the first was running, want 1", len(fs))
	}
	first := b.ticks(t)[0]
	close(release)
	eventually(t, 10*time.Second, "a slot after the first finished", func() bool { return len(b.ticks(t)) >= 2 })
	fs := b.ticks(t)
	if gap := fs[1].slot.Sub(first.slot); gap < 3*time.Second {
		t.Errorf("second invocation's slot is %s after the first: the skipped slots ran", gap)
	}
	if _, pastDue := split(fs); len(pastDue) != 0 {
		t.Errorf("skipped slots came back as %d past-due invocations", len(pastDue))
	}
}

func TestCronOverlapAllow(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := setup(t, "allow", func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return fnhost.Result{}, nil
	})
	defer close(release)
	m := counters("allow")
	tr := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s", Overlap: "allow"})
	run(t, tr)
	eventually(t, 10*time.Second, "3 invocations running at once", func() bool {
		n := 0
		for _, f := range b.ticks(t) {
			if f.state == fnhost.StateRunning {
				n++
			}
		}
		return n >= 3
	})
	if got := m("skipped_overlap"); got != 0 {
		t.Errorf("skipped_overlap = %v with overlap: allow", got)
	}
}

// TestTwoInstances runs two triggers for the same schedule on one store, as two hosts
// sharing a database do: each slot fires once.
func TestCronTwoInstances(t *testing.T) {
	t.Parallel()
	b := setup(t, "pair", nil)
	m := counters("pair")
	ct := manifest.CronTrigger{Schedule: "@every 1s"}
	a, c := b.trigger(t, ct), b.trigger(t, ct)
	run(t, a)
	run(t, c)
	eventually(t, 15*time.Second, "4 slots", func() bool { return len(b.ticks(t)) >= 4 })
	fs := b.ticks(t)
	seen := map[string]int{}
	for _, f := range fs {
		seen[f.data.Slot]++
	}
	for slot, n := range seen {
		if n != 1 {
			t.Errorf("slot %s fired %d times", slot, n)
		}
	}
	checkUniqueConsecutive(t, "slots", fs, time.Second)
	if _, pastDue := split(fs); len(pastDue) != 0 {
		t.Errorf("%d past-due invocations", len(pastDue))
	}
	if m("duplicate") == 0 {
		t.Error("no duplicate was counted: the two instances did not both fire")
	}
}

// TestTwoSchedulesOneFunction: two cron triggers of one function do not share slots.
func TestCronTwoSchedulesOneFunction(t *testing.T) {
	t.Parallel()
	b := setup(t, "two", nil)
	x := b.trigger(t, manifest.CronTrigger{Schedule: "@every 1s"})
	y := b.trigger(t, manifest.CronTrigger{Schedule: "* * * * * *"})
	if x.key == y.key || x.prefix == y.prefix {
		t.Fatalf("keys %s/%s, prefixes %s/%s", x.key, y.key, x.prefix, y.prefix)
	}
	run(t, x)
	run(t, y)
	eventually(t, 10*time.Second, "both schedules to fire twice", func() bool {
		n := map[string]int{}
		for _, f := range b.ticks(t) {
			n[f.data.Schedule]++
		}
		return n["@every 1s"] >= 2 && n["* * * * * *"] >= 2
	})
}

func TestCronNewRejects(t *testing.T) {
	t.Parallel()
	b := &bundle{fn: "x"}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		ct   manifest.CronTrigger
		want string
	}{
		{manifest.CronTrigger{Schedule: "* *"}, "schedule"},
		{manifest.CronTrigger{Schedule: "@daily", Timezone: "Mars/Olympus"}, "timezone"},
		{manifest.CronTrigger{Schedule: "@daily", Missed: "some"}, "missed"},
		{manifest.CronTrigger{Schedule: "@daily", Overlap: "never"}, "overlap"},
	} {
		_, err := New(triggers.Env{Function: &manifest.Function{Name: b.fn}, Trigger: manifest.Trigger{Kind: "cron", Cron: &c.ct}, Submitter: nopSubmitter{}, Store: st})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("%+v: err %v, want one naming the function and %s", c.ct, err, c.want)
		}
	}
	if _, err := New(triggers.Env{Function: &manifest.Function{Name: "x"}, Trigger: manifest.Trigger{Kind: "cron", Cron: &manifest.CronTrigger{Schedule: "@daily"}}, Submitter: nopSubmitter{}}); err == nil {
		t.Error("no error without a store")
	}
}

type nopSubmitter struct{}

func (nopSubmitter) Submit(context.Context, ...fnhost.Submission) ([]store.EnqueueResult, error) {
	return nil, nil
}

func (nopSubmitter) Invoke(context.Context, fnhost.Submission, time.Duration) (*fnhost.Invocation, error) {
	return nil, nil
}

func TestCronMetricsRegisterTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	registerMetrics(reg, nil)
	registerMetrics(reg, nil) // an AlreadyRegisteredError, tolerated
	initMetrics("metrics")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "fnhost_cron_slots_total"
	}
	if !found {
		t.Error("fnhost_cron_slots_total is not registered")
	}
}
