//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr puts the server in a process group of its own, so that a kill reaches its
// backends too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
