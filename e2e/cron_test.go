package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The handler is quick, and overlap is allow: an invocation that a stop left pending
// must not make overlap: skip hold back the catch-up that these tests look for.
const cronManifest = `
version: 1
host:
  listen: {{ADDR}}
  shutdown_timeout: 5s
functions:
  tick:
    handler: {builtin: echo}
    triggers:
      - cron: {schedule: "@every 1s", missed: %s, overlap: allow}
`

// cronTick is one invocation of a cron trigger, as the API shows it.
type cronTick struct {
	id   string
	slot time.Time
	data struct {
		Schedule    string `json:"schedule"`
		Slot        string `json:"slot"`
		PastDue     bool   `json:"past_due"`
		MissedSlots int    `json:"missed_slots"`
	}
}

// cronTicks reads every invocation of tick with its event, oldest slot first.
func cronTicks(p *project) []cronTick {
	p.t.Helper()
	var out []cronTick
	for _, inv := range p.all("function=tick") {
		full := p.invocation(inv.ID)
		var ev struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(full.Event, &ev); err != nil || ev.Type != "fnhost.cron.tick" {
			p.t.Fatalf("invocation %s: event %s (%v)", inv.ID, full.Event, err)
		}
		tk := cronTick{id: inv.ID}
		if err := json.Unmarshal(ev.Data, &tk.data); err != nil {
			p.t.Fatalf("invocation %s: data %s: %v", inv.ID, ev.Data, err)
		}
		slot, err := time.Parse(time.RFC3339, tk.data.Slot)
		if err != nil {
			p.t.Fatalf("invocation %s: slot %q: %v", inv.ID, tk.data.Slot, err)
		}
		tk.slot = slot
		out = append(out, tk)
	}
	slices.SortFunc(out, func(a, b cronTick) int { return a.slot.Compare(b.slot) })
	return out
}

// cronRuns splits the on-time ticks into runs of consecutive slots.
func cronRuns(ticks []cronTick) (runs [][]cronTick, pastDue []cronTick) {
	for _, tk := range ticks {
		if tk.data.PastDue {
			pastDue = append(pastDue, tk)
			continue
		}
		if n := len(runs); n > 0 && tk.slot.Sub(runs[n-1][len(runs[n-1])-1].slot) == time.Second {
			runs[n-1] = append(runs[n-1], tk)
		} else {
			runs = append(runs, []cronTick{tk})
		}
	}
	return runs, pastDue
}

// checkNextFire: GET /api/v1/functions shows the next slot, in the future.
func checkNextFire(t *testing.T, p *project) {
	t.Helper()
	var fns struct {
		Items []struct {
			Name     string `json:"name"`
			Triggers []struct {
				Kind     string     `json:"kind"`
				NextFire *time.Time `json:"next_fire"`
			} `json:"triggers"`
		} `json:"items"`
	}
	before := time.Now()
	if code := p.api("GET", "/api/v1/functions", nil, &fns); code != 200 {
		t.Fatalf("list functions: status %d", code)
	}
	for _, f := range fns.Items {
		if f.Name != "tick" {
			continue
		}
		if len(f.Triggers) != 1 || f.Triggers[0].Kind != "cron" || f.Triggers[0].NextFire == nil {
			t.Fatalf("tick's triggers: %+v", f.Triggers)
		}
		if nf := *f.Triggers[0].NextFire; !nf.After(before) || nf.After(before.Add(2*time.Second)) {
			t.Fatalf("next_fire %s: want within a second after %s", nf, before)
		}
		return
	}
	t.Fatal("no function tick in GET /api/v1/functions")
}

// checkCronMetrics: /metrics counts the slots fired on time.
func checkCronMetrics(t *testing.T, p *project) {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `fnhost_cron_slots_total{function="tick",outcome="fired"}`) {
		t.Errorf("/metrics has no fnhost_cron_slots_total for tick")
	}
}

// cronRestart runs a host with an @every 1s trigger, stops it (SIGTERM, or SIGKILL
// when kill is set), leaves it down for 3 seconds, starts it again, and returns the
// slots that ran on time before the stop and after the restart, the past-due ones,
// and the slots of the gap between them.
func cronRestart(t *testing.T, missed string, kill bool) (before, after, pastDue []cronTick, gap []time.Time) {
	p := newProject(t, fmt.Sprintf(cronManifest, missed), nil)
	p.start()
	checkNextFire(t, p)
	eventually(t, 20*time.Second, "3 ticks", func() bool { return len(cronTicks(p)) >= 3 })
	stopped := time.Now()
	if kill {
		p.kill()
	} else {
		p.stop()
	}
	time.Sleep(3 * time.Second) // the host is down: these slots are missed
	restarted := time.Now()
	p.start()
	eventually(t, 20*time.Second, "2 ticks on time after the restart", func() bool {
		runs, _ := cronRuns(cronTicks(p))
		return len(runs) >= 2 && len(runs[len(runs)-1]) >= 2
	})
	if missed != "skip" {
		eventually(t, 10*time.Second, "the catch-up", func() bool {
			_, pd := cronRuns(cronTicks(p))
			return len(pd) > 0
		})
	}
	checkNextFire(t, p)
	checkCronMetrics(t, p)

	ticks := cronTicks(p)
	seen := map[time.Time]string{}
	for _, tk := range ticks {
		if prev, dup := seen[tk.slot]; dup {
			t.Errorf("slot %s ran twice: invocations %s and %s", tk.data.Slot, prev, tk.id)
		}
		seen[tk.slot] = tk.id
		if tk.data.Schedule != "@every 1s" {
			t.Errorf("invocation %s: schedule %q", tk.id, tk.data.Schedule)
		}
	}
	runs, pastDue := cronRuns(ticks)
	// On-time slots form one run before the stop and one after the restart.
	if len(runs) != 2 {
		t.Fatalf("on-time slots form %d runs of consecutive slots, want 2 (before and after the restart): %v", len(runs), runs)
	}
	before, after = runs[0], runs[1]
	if last := before[len(before)-1].slot; last.After(stopped) {
		t.Errorf("the last slot before the stop, %s, is after the stop at %s", last, stopped)
	}
	if first := after[0].slot; first.Before(restarted) {
		t.Errorf("the first slot after the restart, %s, is before the restart at %s", first, restarted)
	}
	for s := before[len(before)-1].slot.Add(time.Second); s.Before(after[0].slot); s = s.Add(time.Second) {
		gap = append(gap, s)
	}
	if len(gap) < 2 {
		t.Fatalf("only %d slots passed while the host was down; the test proves nothing", len(gap))
	}
	t.Logf("%d slots before the stop, %d missed, %d after the restart, %d past due", len(before), len(gap), len(after), len(pastDue))
	return before, after, pastDue, gap
}

// checkMissedOne: exactly one past-due invocation, for the last missed slot, counting
// every slot of the gap.
func checkMissedOne(t *testing.T, pastDue []cronTick, gap []time.Time) {
	t.Helper()
	if len(pastDue) != 1 {
		t.Fatalf("%d past-due invocations, want 1", len(pastDue))
	}
	p := pastDue[0]
	if last := gap[len(gap)-1]; !p.slot.Equal(last) {
		t.Errorf("the catch-up is for slot %s, want the last missed slot %s", p.slot, last)
	}
	if p.data.MissedSlots != len(gap) {
		t.Errorf("missed_slots = %d, want %d (the gap %s … %s)", p.data.MissedSlots, len(gap), gap[0], gap[len(gap)-1])
	}
}

func TestCronMissedOneAfterSIGTERM(t *testing.T) {
	t.Parallel()
	_, _, pastDue, gap := cronRestart(t, "one", false)
	checkMissedOne(t, pastDue, gap)
}

func TestCronMissedOneAfterSIGKILL(t *testing.T) {
	t.Parallel()
	_, _, pastDue, gap := cronRestart(t, "one", true)
	checkMissedOne(t, pastDue, gap)
}

func TestCronMissedAllAfterSIGKILL(t *testing.T) {
	t.Parallel()
	_, _, pastDue, gap := cronRestart(t, "all", true)
	var got []time.Time
	for _, p := range pastDue {
		got = append(got, p.slot)
		if p.data.MissedSlots != len(gap) {
			t.Errorf("slot %s: missed_slots = %d, want %d", p.data.Slot, p.data.MissedSlots, len(gap))
		}
	}
	if !slices.EqualFunc(got, gap, time.Time.Equal) {
		t.Errorf("past-due slots %v, want every missed slot once: %v", got, gap)
	}
}

func TestCronMissedSkipAfterSIGTERM(t *testing.T) {
	t.Parallel()
	_, _, pastDue, _ := cronRestart(t, "skip", false)
	if len(pastDue) != 0 {
		t.Errorf("%d past-due invocations with missed: skip", len(pastDue))
	}
	// No slot of the gap ran: cronRestart found exactly two runs with the gap between.
}
