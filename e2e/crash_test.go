package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
)

const crashManifest = `
version: 1
host:
  listen: {{ADDR}}
  workers: 16
functions:
  work:
    handler: {exec: [/bin/sh, ./work.sh]}
    timeout: 30s
    retry: {max_attempts: 5, initial_interval: 100ms}
`

const workScript = `#!/bin/sh
# Each run leaves a line, takes a while, and answers with JSON.
echo "$FNHOST_INVOCATION_ID $FNHOST_ATTEMPT" >> runs.log
sleep 0.1
echo "{\"attempt\": $FNHOST_ATTEMPT}"
`

// TestCrashLosesNothing submits a few hundred slow exec invocations, SIGKILLs the host
// while many are running, restarts it, and checks that every invocation succeeds, with
// the interrupted attempts recorded as lost.
func TestCrashLosesNothing(t *testing.T) {
	p := newProject(t, crashManifest, map[string]string{"work.sh": workScript})
	p.start()

	const total = 300
	ids := make([]string, total)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	sem := make(chan struct{}, 8)
	for i := range total {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var a struct {
				ID string `json:"id"`
			}
			if code := p.api("POST", "/api/v1/functions/work/invocations", fmt.Sprintf(`{"n": %d}`, i), &a); code != 202 {
				errs <- fmt.Errorf("submit %d: status %d", i, code)
				return
			}
			ids[i] = a.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	eventually(t, 60*time.Second, "60 invocations to succeed before the kill", func() bool {
		return len(p.all("function=work&state=succeeded")) >= 60
	})
	p.kill()
	// What was running at the kill is what the store holds as running now: a list
	// through the API before the kill could hold invocations that finished meanwhile.
	running := runningInStore(t, filepath.Join(p.dir, ".fnhost", "fnhost.db"))
	if len(running) == 0 {
		t.Fatal("nothing was running when the host was killed: the test proves nothing")
	}

	p.start()
	eventually(t, 120*time.Second, "all invocations to succeed after the restart", func() bool {
		return len(p.all("function=work&state=succeeded")) == total
	})
	if all := p.all(""); len(all) != total {
		t.Fatalf("the store holds %d invocations, want exactly %d", len(all), total)
	}

	lost := 0
	for _, id := range ids {
		inv := p.invocation(id)
		if inv.State != fnhost.StateSucceeded {
			t.Fatalf("%s: state %s, want succeeded", id, inv.State)
		}
		if len(inv.Attempts) == 0 || len(inv.Attempts) != inv.Attempt {
			t.Fatalf("%s: %d attempt records for attempt number %d", id, len(inv.Attempts), inv.Attempt)
		}
		last := inv.Attempts[len(inv.Attempts)-1]
		if last.Outcome != fnhost.OutcomeSucceeded || !jsonEqual(inv.Output, fmt.Sprintf(`{"attempt": %d}`, inv.Attempt)) {
			t.Fatalf("%s: last attempt %s with output %s", id, last.Outcome, inv.Output)
		}
		for _, a := range inv.Attempts[:len(inv.Attempts)-1] {
			if a.Outcome == fnhost.OutcomeLost {
				lost++
			}
		}
	}
	// Every invocation that was running at the kill ran again after a lost attempt.
	for _, r := range running {
		inv := p.invocation(r)
		if inv.Attempts[0].Outcome != fnhost.OutcomeLost {
			t.Errorf("%s was running at the kill, but its first attempt is %s", r, inv.Attempts[0].Outcome)
		}
	}
	if lost < len(running) {
		t.Errorf("%d lost attempts recorded, want at least the %d running at the kill", lost, len(running))
	}

	// The handler itself saw every invocation at least once.
	log, err := os.ReadFile(filepath.Join(p.dir, "runs.log"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		seen[strings.Fields(line)[0]] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("the handler never ran %s", id)
		}
	}
	p.stop()
}

// runningInStore returns the ids of the invocations running in the SQLite database at
// path, which no host holds.
func runningInStore(t *testing.T, path string) []string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("open the store of the killed host: %v", err)
	}
	defer st.Close()
	var ids []string
	f := store.Filter{State: fnhost.StateRunning, Limit: 1000}
	for {
		page, err := st.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range page.Items {
			ids = append(ids, inv.ID)
		}
		if page.NextCursor == "" {
			return ids
		}
		f.Cursor = page.NextCursor
	}
}
