package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// backlogRows is the backlog of the function that BenchmarkClaimBesideBacklog does not
// claim.
const backlogRows = 100_000

// BenchmarkClaimBesideBacklog claims for a small function, noop, beside 100 000 pending
// invocations of another function, inbox, that nobody claims (a capped function at its
// cap, or one no host serves). The executor claims that way after every submit.
//
//   - empty: noop has nothing ready; the claim finds nothing.
//   - ready=4: four noop invocations, created after the whole backlog, are ready; the
//     claim (limit 8) takes them. Only the claim is timed.
//   - two-functions: four noop invocations at a higher priority than the backlog are
//     ready; the claim asks for inbox and noop with limit 4 and takes them.
func BenchmarkClaimBesideBacklog(b *testing.B) {
	ctx := context.Background()
	s := benchOpen(b, benchOptions)
	defer s.Close()
	start := time.Now().Add(-time.Hour)
	for off := 0; off < backlogRows; off += burnEnqueueBatch {
		invs := make([]store.NewInvocation, burnEnqueueBatch)
		for i := range invs {
			created := start.Add(time.Duration(off+i) * time.Microsecond)
			invs[i] = store.NewInvocation{ID: fnhost.NewIDAt(created), Function: "inbox", Trigger: "fs",
				Event: burnEvent, MaxAttempts: 3, CreatedAt: created}
		}
		if _, err := s.Enqueue(ctx, invs); err != nil {
			b.Fatal(err)
		}
	}
	claim := func(b *testing.B, fns []string, limit int) []*fnhost.Invocation {
		now := time.Now()
		invs, err := s.Claim(ctx, store.ClaimRequest{Owner: "bench", Now: now, LeaseUntil: now.Add(time.Minute),
			Limit: limit, Functions: fns})
		if err != nil {
			b.Fatal(err)
		}
		return invs
	}
	// ready enqueues n noop invocations at priority, untimed.
	ready := func(b *testing.B, n, priority int) {
		b.StopTimer()
		invs := make([]store.NewInvocation, n)
		now := time.Now()
		for i := range invs {
			invs[i] = store.NewInvocation{ID: fnhost.NewIDAt(now), Function: "noop", Trigger: "http",
				Event: burnEvent, MaxAttempts: 3, CreatedAt: now, Priority: priority}
		}
		if _, err := s.Enqueue(ctx, invs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	// report gives the rate of the timed claims alone.
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
	}

	b.Run("empty", func(b *testing.B) {
		for range b.N {
			if got := claim(b, []string{"noop"}, 8); len(got) != 0 {
				b.Fatalf("claimed %d, want none", len(got))
			}
		}
		report(b)
	})
	b.Run("ready=4", func(b *testing.B) {
		for range b.N {
			ready(b, 4, 0)
			if got := claim(b, []string{"noop"}, 8); len(got) != 4 {
				b.Fatalf("claimed %d, want 4", len(got))
			}
		}
		report(b)
	})
	b.Run("two-functions", func(b *testing.B) {
		for range b.N {
			ready(b, 4, 1)
			got := claim(b, []string{"inbox", "noop"}, 4)
			if len(got) != 4 || got[0].Function != "noop" || got[3].Function != "noop" {
				b.Fatalf("claimed %d, want the 4 noop invocations", len(got))
			}
		}
		report(b)
	})
}
