package s3test

import "syscall"

// sysProcAttr puts a server in a process group of its own, so that Stop reaches all of
// it, and has the kernel kill it when the test binary dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
