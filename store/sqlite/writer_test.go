package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// TestBatchSavepoints runs requests that write and then fail beside requests that
// succeed, in shared transactions: each failing request is rolled back alone.
func TestBatchSavepoints(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "fnhost.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()

	// Hold the writer so that the requests below queue up and share a transaction.
	hold := make(chan struct{})
	holding := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.do(ctx, 1, func(*writer) error { close(holding); <-hold; return nil })
	}()
	<-holding

	const n = 100
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var (
		wg      sync.WaitGroup
		started atomic.Int64
		failed  = errors.New("request failed after writing")
		ids     = make([]string, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows, err := prepareNew([]store.NewInvocation{{
				ID: fnhost.NewIDAt(base), Function: "f", CreatedAt: base, MaxAttempts: 1,
			}})
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = rows[0].id
			started.Add(1)
			errs[i] = s.do(ctx, 1, func(w *writer) error {
				if err := w.insert(rows, nil); err != nil {
					return err
				}
				if i%2 == 1 {
					return failed
				}
				return nil
			})
		}()
	}
	for started.Load() < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the callers reach the writer's queue
	before := s.batches.Load()
	close(hold)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("holding request: %v", err)
	}
	if b := s.batches.Load() - before; b > 10 {
		t.Errorf("%d requests took %d transactions; want them grouped", n, b)
	}
	for i := range n {
		_, gerr := s.Get(ctx, ids[i])
		if i%2 == 1 {
			if !errors.Is(errs[i], failed) {
				t.Fatalf("request %d: %v, want its own error", i, errs[i])
			}
			if !errors.Is(gerr, store.ErrNotFound) {
				t.Fatalf("request %d failed but its row is stored (%v)", i, gerr)
			}
			continue
		}
		if errs[i] != nil || gerr != nil {
			t.Fatalf("request %d: %v; Get: %v", i, errs[i], gerr)
		}
	}
}

// TestCallerGivesUp has a caller's context end while the writer is busy: the caller
// returns at once, the request is skipped, and the writer goes on.
func TestCallerGivesUp(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "fnhost.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	hold := make(chan struct{})
	holding := make(chan struct{})
	go func() { _ = s.do(ctx, 1, func(*writer) error { close(holding); <-hold; return nil }) }()
	<-holding

	cctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.do(cctx, 1, func(*writer) error { ran <- struct{}{}; return nil })
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	close(hold)
	res, err := s.Enqueue(ctx, []store.NewInvocation{{ID: fnhost.NewID(), Function: "f"}})
	if err != nil || len(res) != 1 {
		t.Fatalf("Enqueue after a caller gave up: %v, %v", res, err)
	}
	select {
	case <-ran:
		t.Fatalf("the request of a caller that gave up ran")
	default:
	}
}
