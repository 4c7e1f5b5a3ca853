package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// benchEvent is the size of a small CloudEvent.
var benchEvent = json.RawMessage(`{"specversion":"1.0","id":"01JX0000000000000000000000","source":"bench","type":"fnhost.bench","time":"2025-06-01T12:00:00Z","data":{}}`)

// BenchmarkThroughput measures invocations through the whole life on one store:
// enqueued in batches of 500 by 2 submitters while 8 workers claim them 64 at a time
// and complete each batch with one call, as a host does. It reports invocations per
// second (jobs/s) from the first enqueue to the last completion.
func BenchmarkThroughput(b *testing.B) {
	for _, instances := range []int{1, 2} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) {
			loc := location(b)
			ss := make([]store.Store, instances)
			for i := range ss {
				ss[i] = open(b, loc)
			}
			ctx := context.Background()
			n := max(b.N, 1000)
			const batch, submitters, workers, claimLimit = 500, 2, 8, 64
			var (
				submitted, completed atomic.Int64
				wg                   sync.WaitGroup
				errOnce              sync.Once
				firstErr             error
			)
			fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
			b.ResetTimer()
			start := time.Now()
			for p := range submitters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := ss[p%instances]
					invs := make([]store.NewInvocation, 0, batch)
					for {
						k := submitted.Add(batch) - batch
						if k >= int64(n) {
							return
						}
						invs = invs[:0]
						for i := k; i < min(k+batch, int64(n)); i++ {
							now := time.Now()
							invs = append(invs, store.NewInvocation{ID: fnhost.NewIDAt(now), Function: "noop", Trigger: "bench",
								Event: benchEvent, MaxAttempts: 3, CreatedAt: now})
						}
						if _, err := s.Enqueue(ctx, invs); err != nil {
							fail(err)
							return
						}
					}
				}()
			}
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := ss[w%instances]
					owner := fmt.Sprintf("worker-%d", w)
					cs := make([]store.Completion, 0, claimLimit)
					for completed.Load() < int64(n) && firstErr == nil {
						now := time.Now()
						invs, err := s.Claim(ctx, store.ClaimRequest{Owner: owner, Now: now, LeaseUntil: now.Add(time.Minute),
							Limit: claimLimit, Functions: []string{"noop"}})
						if err != nil {
							fail(err)
							return
						}
						if len(invs) == 0 {
							time.Sleep(time.Millisecond)
							continue
						}
						cs = cs[:0]
						done := time.Now()
						for _, inv := range invs {
							cs = append(cs, store.Completion{ID: inv.ID, Owner: owner, State: fnhost.StateSucceeded,
								Output: json.RawMessage(`null`), Attempt: fnhost.Attempt{StartedAt: now, FinishedAt: done,
									Outcome: fnhost.OutcomeSucceeded}})
						}
						dropped, err := s.Complete(ctx, cs)
						if err != nil || len(dropped) > 0 {
							fail(fmt.Errorf("Complete: dropped %v, %v", dropped, err))
							return
						}
						completed.Add(int64(len(invs)))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			b.ReportMetric(float64(n)/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
