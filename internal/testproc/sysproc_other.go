//go:build unix && !linux

package testproc

import "syscall"

// own puts a program in a process group of its own.
func own(a *syscall.SysProcAttr) {
	a.Setpgid = true
}
