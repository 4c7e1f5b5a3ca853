// Package runtimetest starts a real executor on a real SQLite store for the tests of
// the packages built on top of them.
package runtimetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store/sqlite"
)

// OpenStore opens a SQLite store in a temporary directory; it is closed when the test
// ends.
func OpenStore(t testing.TB, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Start creates and starts a runtime from cfg and stops it when the test ends. A nil
// cfg.Store gets a new store from OpenStore; a zero PollInterval becomes 50 ms.
func Start(t testing.TB, cfg runtime.Config) *runtime.Runtime {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = OpenStore(t, sqlite.Options{})
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	rt, err := runtime.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Stop(ctx)
	})
	return rt
}
