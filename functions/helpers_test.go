package functions_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/manifest"
)

// attempt is what one invocation of a handler in a test sees and leaves.
type attempt struct {
	info fnhost.Info
	log  *testlog.Buffer
	ev   fnhost.Event
}

func newAttempt(data string) *attempt {
	log := &testlog.Buffer{}
	var raw json.RawMessage
	if data != "" {
		raw = json.RawMessage(data)
	}
	ev := fnhost.NewEvent("test/functions", "dev.fnhost.test", "subject-1", raw)
	return &attempt{
		info: fnhost.Info{
			InvocationID: fnhost.NewID(),
			Function:     "fn",
			Attempt:      2,
			MaxAttempts:  5,
			Trigger:      "http",
			Log:          log,
		},
		log: log,
		ev:  ev,
	}
}

// invoke runs h once with a's info in ctx.
func (a *attempt) invoke(ctx context.Context, h fnhost.Handler) (fnhost.Result, error) {
	if d, ok := ctx.Deadline(); ok {
		a.info.Deadline = d
	}
	return h.Invoke(fnhost.WithInfo(ctx, a.info), a.ev)
}

// build calls functions.New and fails the test on an error.
func build(t testing.TB, fn *manifest.Function, opts functions.Options) fnhost.Handler {
	t.Helper()
	if fn.Name == "" {
		fn.Name = "fn"
	}
	h, err := functions.New(fn, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// writeScript writes a /bin/sh script into dir and returns its name.
func writeScript(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return name
}

// shFunction is a function running a script through /bin/sh in dir.
func shFunction(dir, script string) *manifest.Function {
	return &manifest.Function{
		Name:    "fn",
		Handler: manifest.Handler{Exec: []string{"/bin/sh", script}, Dir: dir},
	}
}

// readPID reads a pid the script wrote.
func readPID(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// alive reports whether pid is a live process: neither gone nor a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	switch s[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

// eventuallyDead waits for a SIGKILLed process to be gone (the kernel may take a moment
// to run it to its end) and fails the test if it lives on.
func eventuallyDead(t testing.TB, pid int) {
	t.Helper()
	for range 200 {
		if !alive(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d survived the attempt", pid)
}
