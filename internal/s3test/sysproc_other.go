//go:build unix && !linux

package s3test

import "syscall"

// sysProcAttr puts a server in a process group of its own, so that Stop reaches all of
// it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
