package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
)

const shutdownManifest = `
version: 1
host:
  listen: {{ADDR}}
  shutdown_timeout: ${SHUTDOWN:-10s}
functions:
  job:
    handler: {exec: [/bin/sh, ./job.sh]}
    timeout: 1m
`

// job.sh runs for as long as its data says, leaving a mark when it starts and ends.
const jobScript = `#!/bin/sh
echo "start $FNHOST_INVOCATION_ID $FNHOST_ATTEMPT" >> marks.log
sleep "$(sed 's/.*"seconds": *\([0-9.]*\).*/\1/')"
echo "end $FNHOST_INVOCATION_ID $FNHOST_ATTEMPT" >> marks.log
echo '"done"'
`

// TestGracefulShutdownDrains: SIGTERM lets a running invocation finish.
func TestGracefulShutdownDrains(t *testing.T) {
	p := newProject(t, shutdownManifest, map[string]string{"job.sh": jobScript})
	p.start()
	var a struct{ ID string }
	p.api("POST", "/api/v1/functions/job/invocations", `{"seconds": 2}`, &a)
	eventually(t, 10*time.Second, "the job to start", func() bool {
		return p.invocation(a.ID).State == fnhost.StateRunning
	})
	p.stop()
	marks, _ := os.ReadFile(filepath.Join(p.dir, "marks.log"))
	if !strings.Contains(string(marks), "end "+a.ID+" 1") {
		t.Fatalf("the job did not finish before the host exited:\n%s", marks)
	}
	p.start()
	if inv := p.invocation(a.ID); inv.State != fnhost.StateSucceeded || len(inv.Attempts) != 1 {
		t.Fatalf("after the drain: state %s with %d attempts", inv.State, len(inv.Attempts))
	}
}

// TestGracefulShutdownReleases: past the deadline the invocation is handed back, and the
// next start runs it again.
func TestGracefulShutdownReleases(t *testing.T) {
	t.Setenv("SHUTDOWN", "300ms")
	p := newProject(t, shutdownManifest, map[string]string{"job.sh": jobScript})
	p.start()
	var a struct{ ID string }
	p.api("POST", "/api/v1/functions/job/invocations", `{"seconds": 1.5}`, &a)
	eventually(t, 10*time.Second, "the job to start", func() bool {
		return p.invocation(a.ID).State == fnhost.StateRunning
	})
	p.stop()
	p.start()
	eventually(t, 20*time.Second, "the released job to succeed", func() bool {
		return p.invocation(a.ID).State == fnhost.StateSucceeded
	})
	inv := p.invocation(a.ID)
	if len(inv.Attempts) != 2 || inv.Attempts[0].Outcome != fnhost.OutcomeReleased || inv.Attempts[1].Outcome != fnhost.OutcomeSucceeded {
		t.Fatalf("attempts %+v, want released then succeeded", inv.Attempts)
	}
}
