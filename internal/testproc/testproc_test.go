package testproc

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// recorder is a testing.TB that records how SkipOrFail ended the test.
type recorder struct {
	testing.TB
	ended string
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.ended = "skip"; panic(r) }
func (r *recorder) Fatal(args ...any) { r.ended = "fatal"; panic(r) }

func (r *recorder) run(err error) string {
	defer func() { _ = recover() }()
	SkipOrFail(r, err)
	return "returned"
}

func TestSkipOrFail(t *testing.T) {
	sentinel := errors.New("tool not installed")
	missing := fmt.Errorf("start: %w", Missing{Msg: "no tool; install it", Is: sentinel})
	if !errors.Is(missing, sentinel) {
		t.Fatal("Missing does not wrap its sentinel")
	}
	for _, c := range []struct {
		ci   string
		err  error
		want string
	}{
		{"", missing, "skip"},
		{"true", missing, "fatal"},
		{"", errors.New("broken"), "fatal"},
	} {
		t.Setenv("CI", c.ci)
		r := &recorder{TB: t}
		r.run(c.err)
		if r.ended != c.want {
			t.Errorf("CI=%q, %v: %s, want %s", c.ci, c.err, r.ended, c.want)
		}
	}
}

// TestStopReachesTheGroup: Stop ends a program and the child it started, which is in
// its process group, even when the program ignores the signal.
func TestStopReachesTheGroup(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no process groups")
	}
	cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; sleep 300 & echo $!; wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	exited, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmt.Fscan(out, &child); err != nil {
		t.Fatal(err)
	}
	Stop(cmd, exited, syscall.SIGTERM, 200*time.Millisecond)
	select {
	case <-exited:
	default:
		t.Fatal("Stop returned before the program exited")
	}
	// The child gets SIGKILL with its group; wait for it to be gone (or a zombie).
	for deadline := time.Now().Add(time.Minute); syscall.Kill(child, 0) == nil && !zombie(child); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d outlived Stop", child)
		}
	}
}
