package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fnhost/fnhost"
)

const execManifest = `
version: 1
host:
  listen: {{ADDR}}
functions:
  slow:
    handler: {exec: [/bin/sh, ./slow.sh], grace_period: 500ms}
    timeout: 1s
    retry: {max_attempts: 1}
  flaky:
    handler: {exec: [/bin/sh, ./flaky.sh]}
    retry: {max_attempts: 3, backoff: fixed, initial_interval: 100ms}
`

const slowScript = `#!/bin/sh
# Starts a grandchild that would outlive us, then waits far past the timeout.
sleep 1000 &
echo $! > grandchild.pid
echo $$ > child.pid
wait
`

const flakyScript = `#!/bin/sh
if [ "$FNHOST_ATTEMPT" = "1" ]; then
  echo "the database is not there yet" >&2
  exit 1
fi
echo "recovered on attempt $FNHOST_ATTEMPT" >&2
echo '{"ok": true}'
`

// alive reports whether a process exists and is not a zombie.
func alive(t *testing.T, pidFile string) bool {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// TestExecTimeoutKillsProcessGroup shows that a handler past its timeout is killed
// with the children it started, and that the attempt is recorded as a timeout.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	p := newProject(t, execManifest, map[string]string{"slow.sh": slowScript, "flaky.sh": flakyScript})
	p.start()
	var inv fnhost.Invocation
	if code := p.api("POST", "/api/v1/functions/slow/invocations?sync=1", `{}`, &inv); code != 200 {
		t.Fatalf("sync invoke: status %d", code)
	}
	if inv.State != fnhost.StateFailed {
		t.Fatalf("state %s, want failed", inv.State)
	}
	full := p.invocation(inv.ID)
	if len(full.Attempts) != 1 || full.Attempts[0].Outcome != fnhost.OutcomeTimeout {
		t.Fatalf("attempts %+v, want one timeout", full.Attempts)
	}
	for _, f := range []string{"child.pid", "grandchild.pid"} {
		if alive(t, filepath.Join(p.dir, f)) {
			t.Errorf("the process in %s outlived the timeout", f)
		}
	}
}

// TestRetryThenSuccessShowsBothAttempts runs a handler that fails once.
func TestRetryThenSuccessShowsBothAttempts(t *testing.T) {
	p := newProject(t, execManifest, map[string]string{"slow.sh": slowScript, "flaky.sh": flakyScript})
	p.start()
	var inv fnhost.Invocation
	if code := p.api("POST", "/api/v1/functions/flaky/invocations?sync=1", `{"x": 1}`, &inv); code != 200 {
		t.Fatalf("sync invoke: status %d", code)
	}
	if inv.State != fnhost.StateSucceeded || !jsonEqual(inv.Output, `{"ok": true}`) {
		t.Fatalf("state %s output %s, want succeeded with {\"ok\": true}", inv.State, inv.Output)
	}
	full := p.invocation(inv.ID)
	if len(full.Attempts) != 2 {
		t.Fatalf("%d attempts, want 2", len(full.Attempts))
	}
	a1, a2 := full.Attempts[0], full.Attempts[1]
	if a1.Outcome != fnhost.OutcomeFailed || a1.Error != "exit status 1" || !strings.Contains(a1.Log, "the database is not there yet") {
		t.Errorf("attempt 1: %+v", a1)
	}
	if a2.Outcome != fnhost.OutcomeSucceeded || !strings.Contains(a2.Log, "recovered on attempt 2") {
		t.Errorf("attempt 2: %+v", a2)
	}
	if !a2.StartedAt.After(a1.FinishedAt) {
		t.Errorf("attempt 2 started %s, before attempt 1 finished %s", a2.StartedAt, a1.FinishedAt)
	}
}
