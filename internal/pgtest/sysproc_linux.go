package pgtest

import "syscall"

// sysProcAttr puts the server in a process group of its own, so that a kill reaches its
// backends too, and has the kernel kill it when the test binary dies without cleaning
// up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
