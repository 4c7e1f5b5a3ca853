package testproc

import "syscall"

// own puts a program in a process group of its own and kills it when the test binary
// dies.
func own(a *syscall.SysProcAttr) {
	a.Setpgid = true
	a.Pdeathsig = syscall.SIGKILL
}
