package browsertest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// using returns the processes (but this one) with an argument that names a file in
// dir, and their command lines.
func using(dir string) map[int]string {
	want := []byte(dir + "/")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	found := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, want) {
			found[pid] = string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	return found
}

// killUsing kills the processes with an argument that names a file in dir and returns
// how many it found.
func killUsing(dir string) int {
	n := 0
	for pid := range using(dir) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
