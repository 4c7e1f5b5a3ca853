package browsertest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr puts Chromium in a process group of its own, so that the cleanup reaches
// all of it, and has the kernel kill it when the test binary dies without cleaning up.
// (chromedp starts it from a goroutine locked to its thread until it exits, so the
// signal does not come early when that thread ends.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killUsing kills the processes with an argument that names a file in dir and returns
// how many it found.
func killUsing(dir string) int {
	want := []byte(dir + "/")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, want) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
