//go:build !linux

package sqlite

import "os"

// syncFile makes f's data durable with the platform's full sync.
func syncFile(f *os.File, _ bool) error {
	return f.Sync()
}
