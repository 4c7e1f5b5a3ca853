package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/manifest"
)

func TestExecSuccess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "handler.sh", `
cat > stdin.json
env > env.txt
pwd > pwd.txt
echo "working on it" >&2
printf '{"ok":true}'
`)
	fn := shFunction(dir, script)
	fn.Handler.Env = map[string]string{"GREETING": "hello world", "PATH": os.Getenv("PATH") + ":/nowhere"}
	h := build(t, fn, functions.Options{})

	a := newAttempt(`{"name":"Ada"}`)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := a.invoke(ctx, h)
	if err != nil {
		t.Fatalf("Invoke: %v\nlog:\n%s", err, a.log)
	}
	if got := string(res.Output); got != `{"ok":true}` {
		t.Errorf("output = %q, want {\"ok\":true}", got)
	}
	if !strings.Contains(a.log.String(), "working on it\n") {
		t.Errorf("stderr missing from the log:\n%s", a.log)
	}

	// stdin is the event as JSON.
	b, err := os.ReadFile(filepath.Join(dir, "stdin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got fnhost.Event
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("stdin is not an event: %v\n%s", err, b)
	}
	if got.ID != a.ev.ID || got.Source != a.ev.Source || got.Type != a.ev.Type || got.Subject != a.ev.Subject ||
		got.SpecVersion != fnhost.SpecVersion || string(got.Data) != `{"name":"Ada"}` || !got.Time.Equal(a.ev.Time) {
		t.Errorf("stdin event = %+v, want %+v", got, a.ev)
	}

	// The environment: the host's, the manifest's, and the invocation's.
	b, err = os.ReadFile(filepath.Join(dir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"FNHOST_FUNCTION":      "fn",
		"FNHOST_INVOCATION_ID": a.info.InvocationID,
		"FNHOST_ATTEMPT":       "2",
		"FNHOST_MAX_ATTEMPTS":  "5",
		"FNHOST_TRIGGER":       "http",
		"FNHOST_DEADLINE":      a.info.Deadline.UTC().Format(time.RFC3339Nano),
		"GREETING":             "hello world",
		"PATH":                 os.Getenv("PATH") + ":/nowhere",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if home := os.Getenv("HOME"); home != "" && env["HOME"] != home {
		t.Errorf("host env HOME = %q, want %q", env["HOME"], home)
	}
	if d, err := time.Parse(time.RFC3339Nano, env["FNHOST_DEADLINE"]); err != nil || !d.Equal(a.info.Deadline) {
		t.Errorf("FNHOST_DEADLINE %q does not parse back to %v: %v", env["FNHOST_DEADLINE"], a.info.Deadline, err)
	}

	// The working directory is Handler.Dir.
	b, _ = os.ReadFile(filepath.Join(dir, "pwd.txt"))
	if got, _ := filepath.EvalSymlinks(strings.TrimSpace(string(b))); got != mustEval(t, dir) {
		t.Errorf("working directory = %q, want %q", got, dir)
	}
}

func mustEval(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecWithoutInfo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "h.sh", `echo "nobody listens" >&2; echo "$FNHOST_FUNCTION"`)
	h := build(t, shFunction(dir, script), functions.Options{})
	res, err := h.Invoke(t.Context(), fnhost.NewEvent("s", "t", "", nil))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if string(res.Output) != "fn\n" {
		t.Errorf("output = %q, want the function's name", res.Output)
	}
}

func TestExecLargeEvent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "cat.sh", `exec cat`)
	h := build(t, shFunction(dir, script), functions.Options{})
	big, _ := json.Marshal(map[string]string{"blob": strings.Repeat("x", 300<<10)})
	a := newAttempt(string(big))
	res, err := a.invoke(t.Context(), h)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	want, _ := json.Marshal(a.ev)
	if string(res.Output) != string(want) {
		t.Errorf("output is %d bytes, want the %d bytes of the event", len(res.Output), len(want))
	}
}

func TestExecExitStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "exit.sh", `echo "bad input" >&2; echo "partial"; exit "$CODE"`)
	for _, tc := range []struct {
		code      string
		permanent bool
	}{
		{"3", false},
		{"75", true},
		{"76", true},
		{"1", false},
	} {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			fn := shFunction(dir, script)
			fn.Handler.Env = map[string]string{"CODE": tc.code}
			fn.Handler.PermanentExitCodes = []int{75, 76}
			h := build(t, fn, functions.Options{})
			a := newAttempt("")
			_, err := a.invoke(t.Context(), h)
			if err == nil {
				t.Fatal("Invoke succeeded, want an error")
			}
			var ee *functions.ExitError
			if !errors.As(err, &ee) || ee.Code != atoi(tc.code) || ee.Signal != 0 {
				t.Fatalf("error %v is not an ExitError with code %s", err, tc.code)
			}
			if !strings.Contains(err.Error(), "exit status "+tc.code) {
				t.Errorf("error %q does not say the exit status", err)
			}
			if got := fnhost.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tc.permanent)
			}
			log := a.log.String()
			if !strings.Contains(log, "bad input") || !strings.Contains(log, "partial") {
				t.Errorf("log lacks stderr or the failed attempt's stdout:\n%s", log)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestExecKilledBySignal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "die.sh", `kill -KILL $$`)
	h := build(t, shFunction(dir, script), functions.Options{})
	_, err := newAttempt("").invoke(t.Context(), h)
	var ee *functions.ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || ee.Code != -1 {
		t.Fatalf("error = %v, want an ExitError for SIGKILL", err)
	}
	if !strings.Contains(err.Error(), "SIGKILL") {
		t.Errorf("error %q does not name the signal", err)
	}
	if fnhost.IsPermanent(err) {
		t.Error("a process killed by a signal is retried, but the error is permanent")
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
	}{
		// The grandchild shares stdout and stderr with its parent.
		{"sharing pipes", `sleep 1000 & echo $! > grandchild.pid; echo $$ > child.pid; sleep 1000`},
		// The grandchild holds none of the pipes: only the group kill reaches it.
		{"detached stdio", `sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > grandchild.pid; echo $$ > child.pid; sleep 1000`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			script := writeScript(t, dir, "slow.sh", tc.body)
			fn := shFunction(dir, script)
			fn.Handler.GracePeriod = 30 * time.Second // SIGTERM must be enough
			h := build(t, fn, functions.Options{})
			a := newAttempt("")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			_, err := a.invoke(ctx, h)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error = %v, want one wrapping context.DeadlineExceeded", err)
			}
			var ee *functions.ExitError
			if !errors.As(err, &ee) || ee.Signal != syscall.SIGTERM {
				t.Errorf("error = %v, want the process killed by SIGTERM", err)
			}
			if fnhost.IsPermanent(err) {
				t.Error("a timeout is retried, but the error is permanent")
			}
			child := readPID(t, filepath.Join(dir, "child.pid"))
			grandchild := readPID(t, filepath.Join(dir, "grandchild.pid"))
			if alive(child) {
				t.Errorf("child %d is still running", child)
			}
			eventuallyDead(t, grandchild)
			if !strings.Contains(a.log.String(), "SIGTERM") {
				t.Errorf("log does not tell of the SIGTERM:\n%s", a.log)
			}
		})
	}
}

func TestExecSIGKILLAfterGracePeriod(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "stubborn.sh", `trap '' TERM; echo $$ > child.pid; sleep 1000`)
	fn := shFunction(dir, script)
	fn.Handler.GracePeriod = 200 * time.Millisecond
	h := build(t, fn, functions.Options{})
	a := newAttempt("")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := a.invoke(ctx, h)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want one wrapping context.DeadlineExceeded", err)
	}
	var ee *functions.ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL {
		t.Errorf("error = %v, want the process killed by SIGKILL", err)
	}
	if alive(readPID(t, filepath.Join(dir, "child.pid"))) {
		t.Error("the process survived")
	}
	if !strings.Contains(a.log.String(), "SIGKILL") {
		t.Errorf("log does not tell of the SIGKILL:\n%s", a.log)
	}
}

func TestExecCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "wait.sh", `echo started >&2; exec sleep 1000`)
	h := build(t, shFunction(dir, script), functions.Options{})
	a := newAttempt("")
	ctx, cancel := context.WithCancel(t.Context())
	// Cancel once the process has said it started.
	go func() {
		for !strings.Contains(a.log.String(), "started") {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	_, err := a.invoke(ctx, h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want one wrapping context.Canceled", err)
	}

	// A context done before the start starts nothing.
	_, err = a.invoke(ctx, h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want one wrapping context.Canceled", err)
	}
}

func TestExecLeftoversKilledAfterExit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The process exits at once, leaving a child that holds stdout.
	script := writeScript(t, dir, "fork.sh", `sleep 1000 & echo $! > grandchild.pid; echo done`)
	h := build(t, shFunction(dir, script), functions.Options{})
	res, err := newAttempt("").invoke(t.Context(), h)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if string(res.Output) != "done\n" {
		t.Errorf("output = %q, want done", res.Output)
	}
	eventuallyDead(t, readPID(t, filepath.Join(dir, "grandchild.pid")))
}

func TestExecDetachedProcessHoldingStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// setsid takes the grandchild out of the process group: it cannot be killed with
	// it, but must not keep the attempt waiting on the pipe it holds.
	script := writeScript(t, dir, "daemon.sh", `
setsid sh -c 'echo $$ > daemon.pid.tmp; mv daemon.pid.tmp daemon.pid; exec sleep 1000' &
while [ ! -e daemon.pid ]; do sleep 0.01; done
echo done
`)
	h := build(t, shFunction(dir, script), functions.Options{})
	a := newAttempt("")
	res, err := a.invoke(t.Context(), h)
	t.Cleanup(func() { _ = syscall.Kill(readPID(t, filepath.Join(dir, "daemon.pid")), syscall.SIGKILL) })
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if string(res.Output) != "done\n" {
		t.Errorf("output = %q, want done", res.Output)
	}
	if !strings.Contains(a.log.String(), "left the process group") {
		t.Errorf("log does not tell of the detached process:\n%s", a.log)
	}
}

func TestExecOutputTooLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Far more than the pipe holds: the process must not block on a full stdout.
	script := writeScript(t, dir, "big.sh", `head -c 1000000 /dev/zero`)
	h := build(t, shFunction(dir, script), functions.Options{MaxOutputBytes: 100})
	_, err := newAttempt("").invoke(t.Context(), h)
	var tl *functions.OutputTooLargeError
	if !errors.As(err, &tl) || tl.Limit != 100 {
		t.Fatalf("error = %v, want an OutputTooLargeError", err)
	}
	if !strings.Contains(err.Error(), "output exceeds 100 bytes") {
		t.Errorf("error %q does not say the cap", err)
	}

	// Exactly at the cap is fine.
	script = writeScript(t, dir, "exact.sh", `head -c 100 /dev/zero`)
	h = build(t, shFunction(dir, script), functions.Options{MaxOutputBytes: 100})
	res, err := newAttempt("").invoke(t.Context(), h)
	if err != nil || len(res.Output) != 100 {
		t.Fatalf("got %d bytes, %v; want 100 bytes", len(res.Output), err)
	}
}

func TestExecProgramResolution(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeScript(t, dir, "bin/hello.sh", `echo "hello from $(pwd)"`)

	// A relative path with a slash is relative to Dir, not to the host's directory.
	h := build(t, &manifest.Function{Handler: manifest.Handler{Exec: []string{"./bin/hello.sh"}, Dir: dir}}, functions.Options{})
	res, err := newAttempt("").invoke(t.Context(), h)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if got, want := strings.TrimSpace(string(res.Output)), "hello from "+mustEval(t, dir); got != want && got != "hello from "+dir {
		t.Errorf("output = %q, want %q", got, want)
	}
	h = build(t, &manifest.Function{Handler: manifest.Handler{Exec: []string{"bin/hello.sh"}, Dir: dir}}, functions.Options{})
	if _, err := newAttempt("").invoke(t.Context(), h); err != nil {
		t.Fatalf("Invoke: %v", err)
	}

	// A bare name is looked up in PATH.
	h = build(t, &manifest.Function{Handler: manifest.Handler{Exec: []string{"sh", "-c", "echo hi"}, Dir: dir}}, functions.Options{})
	if res, err := newAttempt("").invoke(t.Context(), h); err != nil || string(res.Output) != "hi\n" {
		t.Fatalf("Invoke = %q, %v; want hi", res.Output, err)
	}

	for _, tc := range []struct {
		name    string
		handler manifest.Handler
		want    string
	}{
		{"not in PATH", manifest.Handler{Exec: []string{"no-such-program-fnhost"}}, `"no-such-program-fnhost"`},
		{"missing relative", manifest.Handler{Exec: []string{"./missing.sh"}, Dir: dir}, filepath.Join(dir, "missing.sh")},
		{"missing absolute", manifest.Handler{Exec: []string{"/nonexistent/prog"}}, "/nonexistent/prog"},
		{"not executable", manifest.Handler{Exec: []string{"./data.txt"}, Dir: dir}, "data.txt"},
		{"directory", manifest.Handler{Exec: []string{"./bin"}, Dir: dir}, "bin"},
		{"missing dir", manifest.Handler{Exec: []string{"/bin/sh"}, Dir: filepath.Join(dir, "nope")}, "nope"},
		{"reserved env", manifest.Handler{Exec: []string{"/bin/sh"}, Env: map[string]string{"FNHOST_ATTEMPT": "1"}}, "FNHOST_ATTEMPT"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "data.txt"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := functions.New(&manifest.Function{Name: "broken", Handler: tc.handler}, functions.Options{})
		if err == nil {
			t.Errorf("%s: New succeeded, want an error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"broken"`) {
			t.Errorf("%s: error %q does not name %s and the function", tc.name, err, tc.want)
		}
	}
}

func TestExecPython(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no " + python)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "handler.py")
	src := `import json, os, sys
ev = json.load(sys.stdin)
print("attempt", os.environ["FNHOST_ATTEMPT"], file=sys.stderr)
json.dump({"hello": ev["data"]["name"], "id": ev["id"]}, sys.stdout)
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	h := build(t, &manifest.Function{Handler: manifest.Handler{Exec: []string{python, "handler.py"}, Dir: dir}}, functions.Options{})
	a := newAttempt(`{"name":"Ada"}`)
	res, err := a.invoke(t.Context(), h)
	if err != nil {
		t.Fatalf("Invoke: %v\n%s", err, a.log)
	}
	var out struct{ Hello, ID string }
	if err := json.Unmarshal(res.Output, &out); err != nil || out.Hello != "Ada" || out.ID != a.ev.ID {
		t.Errorf("output = %s (%v), want hello Ada and the event id", res.Output, err)
	}
	if !strings.Contains(a.log.String(), "attempt 2") {
		t.Errorf("log = %q, want the attempt from stderr", a.log)
	}
}

func BenchmarkExecTrue(b *testing.B) {
	h := build(b, &manifest.Function{Handler: manifest.Handler{Exec: []string{"/bin/true"}}}, functions.Options{})
	a := newAttempt(`{"n":1}`)
	a.log = nil
	a.info.Log = discard{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ctx = fnhost.WithInfo(ctx, a.info)
	for b.Loop() {
		if _, err := h.Invoke(ctx, a.ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareForkExec(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
