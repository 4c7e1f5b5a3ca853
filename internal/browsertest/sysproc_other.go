//go:build unix && !linux

package browsertest

// using would return the processes with an argument that names a file in dir;
// without /proc it finds none.
func using(dir string) map[int]string { return nil }

// killUsing would kill the processes with an argument that names a file in dir; without
// /proc it finds none.
func killUsing(dir string) int { return 0 }
