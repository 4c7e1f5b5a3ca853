//go:build !unix

package sqlite

import (
	"fmt"
	"os"
)

// lockFile creates path+".lock". Where flock is not available, exclusive use of the
// database is not enforced: run a single fnhost process per database.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: lock: %w", path, err)
	}
	return f, nil
}

func unlockFile(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
