package sqlite

import (
	"os"
	"syscall"
)

// syncFile makes f's data durable: fdatasync, or fsync when useFsync is set.
func syncFile(f *os.File, useFsync bool) error {
	if useFsync {
		return f.Sync()
	}
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
