package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost/internal/pgtest"
)

const clusterManifest = `
version: 1
host:
  listen: {{ADDR}}
  storage: {{STORAGE}}
  workers: 8
  lease: 2s
functions:
  work:
    handler: {builtin: sleep}
    retry: {max_attempts: 3, initial_interval: 50ms}
    triggers:
      - queue: {name: jobs}
  tick:
    handler: {builtin: noop}
    triggers:
      - cron: {schedule: "@every 1s", missed: all, overlap: allow}
`

// TestCluster: three fnhost processes share one PostgreSQL database. 10 000 queued
// invocations and an @every 1s schedule run for more than 30 s while one instance is
// killed with SIGKILL midway. Every invocation succeeds once; the dead instance's
// invocations are rescued by the others (their lost attempt shows); every cron slot
// from the first to the last runs exactly once; the servers API shows the instances
// and the leader.
func TestCluster(t *testing.T) {
	pg := pgtest.Shared(t)
	manifest := strings.ReplaceAll(clusterManifest, "{{STORAGE}}", pg.CreateDB(t, "cluster"))
	var hosts []*project
	for range 3 {
		hosts = append(hosts, newProject(t, manifest, nil))
	}
	for _, p := range hosts {
		p.start()
	}
	a, b := hosts[0], hosts[1]

	// 10 000 messages in batches, spread over the instances' APIs.
	const total = 10000
	for i := 0; i < total; i += 500 {
		var msgs []string
		for j := i; j < i+500; j++ {
			msgs = append(msgs, fmt.Sprintf(`{"data": {"ms": 5}, "dedup_key": "job-%d"}`, j))
		}
		var res any
		p := hosts[(i/500)%3]
		if code := p.api("POST", "/api/v1/queues/jobs/messages", `{"messages": [`+strings.Join(msgs, ",")+`]}`, &res); code != 202 {
			t.Fatalf("publish batch %d: status %d", i/500, code)
		}
	}
	// The progress is read from the live counts of /metrics: listing the succeeded
	// invocations every 50 ms would load the hosts under test.
	eventually(t, 120*time.Second, "a third of the work done", func() bool { return unfinished(t, a) <= 2*total/3 })

	// Kill an instance while it runs handlers.
	eventually(t, 30*time.Second, "the instance to be busy", func() bool {
		var servers struct {
			Items []struct {
				InFlight int  `json:"in_flight"`
				Self     bool `json:"self"`
			} `json:"items"`
		}
		b.api("GET", "/api/v1/servers", nil, &servers)
		for _, s := range servers.Items {
			if s.Self && s.InFlight > 0 {
				return true
			}
		}
		return false
	})
	b.kill()

	eventually(t, 180*time.Second, "all the work done", func() bool { return unfinished(t, a) == 0 })
	// Keep the schedule going for 30 slots in all, then stop the survivors gracefully.
	eventually(t, 90*time.Second, "30 cron slots", func() bool { return len(a.all("function=tick")) >= 30 })
	var servers struct {
		Items []struct {
			ID     string `json:"id"`
			Alive  bool   `json:"alive"`
			Leader bool   `json:"leader"`
		} `json:"items"`
		Lease        string `json:"lease"`
		RescueWithin string `json:"rescue_within"`
	}
	if code := a.api("GET", "/api/v1/servers", nil, &servers); code != 200 {
		t.Fatalf("servers: status %d", code)
	}
	alive, leaders := 0, 0
	for _, s := range servers.Items {
		if s.Alive {
			alive++
		}
		if s.Leader {
			leaders++
		}
	}
	if alive != 2 || leaders != 1 || servers.Lease != "2s" || servers.RescueWithin == "" {
		t.Errorf("servers = %+v, want two alive instances, one leader, lease 2s and a rescue bound", servers)
	}
	hosts[2].stop()
	a.stop()

	// Read the results from the store through a fresh instance's API. It must not fire
	// the schedule: the manifest without the cron trigger.
	noCron := strings.Replace(manifest, `      - cron: {schedule: "@every 1s", missed: all, overlap: allow}`, `      - queue: {name: ticks}`, 1)
	c := newProject(t, noCron, nil)
	c.start()
	defer c.stop()

	work := c.all("function=work")
	if len(work) != total {
		t.Errorf("%d invocations of work, want %d", len(work), total)
	}
	rescued := 0
	for _, inv := range work {
		if inv.State != "succeeded" {
			t.Errorf("%s: %s", inv.ID, inv.State)
		}
		if inv.Attempt > 1 {
			full := c.invocation(inv.ID)
			for _, at := range full.Attempts {
				if at.Outcome == "lost" {
					rescued++
					break
				}
			}
		}
	}
	if rescued == 0 {
		t.Error("no invocation shows a lost attempt: the killed instance's leases were not rescued")
	}

	ticks := cronTicks(c)
	if len(ticks) < 30 {
		t.Fatalf("%d cron slots ran, want at least 30", len(ticks))
	}
	for i := 1; i < len(ticks); i++ {
		switch d := ticks[i].slot.Sub(ticks[i-1].slot); {
		case d == 0:
			t.Errorf("slot %s ran twice (%s and %s)", ticks[i].slot, ticks[i-1].id, ticks[i].id)
		case d != time.Second:
			t.Errorf("slots skipped between %s and %s", ticks[i-1].slot, ticks[i].slot)
		}
	}
	t.Logf("%d invocations, %d rescued from the killed instance, %d cron slots", len(work), rescued, len(ticks))
}

// unfinished is how many invocations the store holds scheduled, pending or running,
// by the live counts of p's /metrics.
func unfinished(t *testing.T, p *project) int {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, st := range []string{"scheduled", "pending", "running"} {
			if v, ok := strings.CutPrefix(sc.Text(), `fnhost_invocations{state="`+st+`"} `); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("metrics: %q: %v", sc.Text(), err)
				}
				n += int(f)
			}
		}
	}
	return n
}
