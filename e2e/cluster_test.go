package e2e

import (
	"fmt"
	"os"
	"path/filepath"
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
	pg := pgtest.Start(t)
	url := pg.CreateDB(t, "cluster")
	var hosts []*project
	for range 3 {
		p := newProject(t, strings.ReplaceAll(clusterManifest, "{{STORAGE}}", url), nil)
		hosts = append(hosts, p)
	}
	for _, p := range hosts {
		p.start()
	}
	began := time.Now()
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
	succeeded := func(p *project) int { return len(p.all("function=work&state=succeeded")) }
	eventually(t, 120*time.Second, "a third of the work done", func() bool { return succeeded(a) >= total/3 })

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

	eventually(t, 180*time.Second, "all the work done", func() bool { return succeeded(a) == total })
	// Keep the schedule going for 30 s in all, then stop the survivors gracefully.
	if d := 32*time.Second - time.Since(began); d > 0 {
		time.Sleep(d)
	}
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

	// Read the results from the store through a fresh instance's API.
	c := newProject(t, strings.ReplaceAll(clusterManifest, "{{STORAGE}}", url), nil)
	// It must not fire the schedule: a copy of the manifest without the cron trigger.
	noCron := strings.Replace(strings.ReplaceAll(clusterManifest, "{{STORAGE}}", url), `      - cron: {schedule: "@every 1s", missed: all, overlap: allow}`, `      - queue: {name: ticks}`, 1)
	writeManifest(t, c, noCron)
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
	if len(ticks) < 25 {
		t.Fatalf("%d cron slots ran, want about 30", len(ticks))
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

// writeManifest replaces the project's manifest.
func writeManifest(t *testing.T, p *project, manifest string) {
	t.Helper()
	manifest = strings.ReplaceAll(manifest, "{{ADDR}}", p.addr)
	if err := os.WriteFile(filepath.Join(p.dir, "functions.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}
