package sqlite_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
)

// BenchmarkSyncOneWrite stores synchronous invocations that ran before they were
// stored, from 64 goroutines, each storing one at a time, on a durable database:
//
//   - two-writes: Enqueue with Owner (the invocation claimed), then Complete.
//   - one-write: Enqueue with Owner and Completion.
//
// ops/s counts stored, finished invocations per second.
func BenchmarkSyncOneWrite(b *testing.B) {
	const goroutines = 64
	output := json.RawMessage(`{"status":200}`)
	for _, mode := range []string{"two-writes", "one-write"} {
		b.Run(mode, func(b *testing.B) {
			s := benchOpen(b, sqlite.Options{})
			defer s.Close()
			ctx := context.Background()
			var (
				left atomic.Int64
				wg   sync.WaitGroup
			)
			left.Store(int64(b.N))
			b.ResetTimer()
			for range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						now := time.Now()
						inv := store.NewInvocation{ID: fnhost.NewIDAt(now), Function: "sync", Trigger: "http",
							Event: burnEvent, MaxAttempts: 1, CreatedAt: now, Owner: "host-1", LeaseUntil: now.Add(time.Minute)}
						c := store.Completion{ID: inv.ID, Owner: "host-1", State: fnhost.StateSucceeded, Output: output,
							Attempt: fnhost.Attempt{StartedAt: now, FinishedAt: now.Add(time.Millisecond),
								Outcome: fnhost.OutcomeSucceeded, Owner: "host-1"}}
						if mode == "one-write" {
							inv.Completion = &c
						}
						if _, err := s.Enqueue(ctx, []store.NewInvocation{inv}); err != nil {
							b.Error(err)
							return
						}
						if mode == "two-writes" {
							if dropped, err := s.Complete(ctx, []store.Completion{c}); err != nil || len(dropped) != 0 {
								b.Errorf("complete: %v, dropped %v", err, dropped)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
