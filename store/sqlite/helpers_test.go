package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost/store"
)

// openTest opens a store in a temporary directory; it is closed when the test ends.
func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// holdWriter keeps the writer busy until release is called, so that the requests sent
// meanwhile queue up for the next transaction. release fails the test if the holding
// request failed.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	hold := make(chan struct{})
	holding := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.do(context.Background(), 1, func(*writer) error { close(holding); <-hold; return nil })
	}()
	<-holding
	return func() {
		t.Helper()
		close(hold)
		if err := <-held; err != nil {
			t.Fatalf("holding request: %v", err)
		}
	}
}

// waitQueued waits until n requests wait for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.queued.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests reached the writer's queue", s.queued.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// grouped runs each call, one write request each, in its own goroutine while the writer
// is held; once all are queued it lets the writer go and waits for them. It fails the
// test when they took more than a few transactions: they must share them.
func grouped(t *testing.T, s *Store, calls []func()) {
	t.Helper()
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(call)
	}
	waitQueued(t, s, len(calls))
	before := s.batches.Load()
	release()
	wg.Wait()
	if b := s.batches.Load() - before; b > 10 {
		t.Errorf("%d requests took %d transactions; want them grouped", len(calls), b)
	}
}

// concurrently runs each call in its own goroutine and waits for all of them.
func concurrently(calls []func()) {
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(call)
	}
	wg.Wait()
}

// enqueueAll makes one Enqueue call per element of calls, all at once: grouped (the
// writer held until every call is queued) or plainly concurrent. It fails the test on
// any error and returns the results in the order of calls.
func enqueueAll(t *testing.T, s *Store, calls [][]store.NewInvocation, group bool) [][]store.EnqueueResult {
	t.Helper()
	results := make([][]store.EnqueueResult, len(calls))
	errs := make([]error, len(calls))
	fns := make([]func(), len(calls))
	for i := range calls {
		fns[i] = func() { results[i], errs[i] = s.Enqueue(context.Background(), calls[i]) }
	}
	if group {
		grouped(t, s, fns)
	} else {
		concurrently(fns)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	return results
}
