// Package testproc holds what the harnesses that run real programs for the tests
// (s3test, pgtest, browsertest) share: finding a program, telling a missing one (a
// skip on a laptop, a failure under CI=true) from a broken one, a free port, and
// starting and stopping a program with its whole process group.
package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Missing is the error of a program that is not installed. Msg says where it was
// looked for and how to install it; the error wraps Is, the harness's sentinel (such as
// s3test.ErrNoBinary).
type Missing struct {
	Msg string
	Is  error
}

func (e Missing) Error() string { return e.Msg }
func (e Missing) Unwrap() error { return e.Is }

// SkipOrFail ends the test for err: a Missing program skips it, except when the
// environment has CI=true, where nothing may pass by skipping; any other error fails it.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	var m Missing
	if errors.As(err, &m) && os.Getenv("CI") != "true" {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

// IsExecutable reports whether p is a regular file that may be executed.
func IsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns 127.0.0.1 with a port that was free a moment ago.
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// Own makes cmd run in a process group of its own, which Stop reaches whole, and die
// with the test binary where the system can say so. It keeps cmd's other attributes
// (a Credential, say).
func Own(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	own(cmd.SysProcAttr)
}

// Start starts cmd, as Own makes it, and returns a channel closed once it exited.
func Start(cmd *exec.Cmd) (exited <-chan struct{}, err error) {
	Own(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return done, nil
}

// Stop sends sig to the process group of cmd, which Start started, and SIGKILL when it
// has not exited after grace; it returns once it exited.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal, grace time.Duration) {
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
}
