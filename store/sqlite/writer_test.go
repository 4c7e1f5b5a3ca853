package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// TestBatchSavepoints runs requests that write and then fail beside requests that
// succeed, in shared transactions: each failing request is rolled back alone.
func TestBatchSavepoints(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})

	const n = 100
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	failed := errors.New("request failed after writing")
	ids := make([]string, n)
	errs := make([]error, n)
	calls := make([]func(), n)
	for i := range n {
		rows, err := prepareNew([]store.NewInvocation{{
			ID: fnhost.NewIDAt(base), Function: "f", CreatedAt: base, MaxAttempts: 1,
		}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = rows[0].id
		calls[i] = func() {
			errs[i] = s.do(ctx, 1, func(w *writer) error {
				if err := w.insert(rows, nil); err != nil {
					return err
				}
				if i%2 == 1 {
					return failed
				}
				return nil
			})
		}
	}
	grouped(t, s, calls)
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
	s := openTest(t, Options{})
	release := holdWriter(t, s)

	cctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.do(cctx, 1, func(*writer) error { ran <- struct{}{}; return nil })
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	release()
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
