package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
)

// benchOptions are the options of the burn-down store: the defaults, durable.
var benchOptions = sqlite.Options{Synchronous: "OFF"}

const (
	burnTotal        = 100_000
	burnEnqueueBatch = 1000
	burnClaimBatch   = 256
)

// burnEvent is a typical small CloudEvent.

var burnEvent = func() json.RawMessage {
	b, _ := json.Marshal(fnhost.Event{
		SpecVersion: fnhost.SpecVersion, ID: "01JD00000000000000000000000", Source: "/hooks/orders",
		Type: "fnhost.http.request", Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		DataContentType: "application/json", Data: json.RawMessage(`{"order":12345,"amount":"19.99"}`),
	})
	return b
}()

func benchOpen(b *testing.B, opts sqlite.Options) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "fnhost.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// enqueueAll stores n pending invocations in batches, from several goroutines.
func enqueueAll(b *testing.B, s store.Store, n, batch, workers int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for size := range jobs {
				invs := make([]store.NewInvocation, size)
				now := time.Now()
				for i := range invs {
					invs[i] = store.NewInvocation{ID: fnhost.NewIDAt(now), Function: "noop", Trigger: "queue",
						Event: burnEvent, MaxAttempts: 3, CreatedAt: now}
				}
				if _, err := s.Enqueue(ctx, invs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for left := n; left > 0; left -= batch {
		jobs <- min(batch, left)
	}
	close(jobs)
	wg.Wait()
}

// burn claims and completes everything ready, workers at a time, the way the executor
// does: claim a batch, run it, complete the batch.
func burn(b *testing.B, s store.Store, workers int) int {
	b.Helper()
	ctx := context.Background()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("bench-%d", w)
			cs := make([]store.Completion, 0, burnClaimBatch)
			for {
				now := time.Now()
				invs, err := s.Claim(ctx, store.ClaimRequest{Owner: owner, Now: now, LeaseUntil: now.Add(30 * time.Second), Limit: burnClaimBatch})
				if err != nil {
					b.Error(err)
					return
				}
				if len(invs) == 0 {
					return
				}
				done := time.Now()
				cs = cs[:0]
				for _, inv := range invs {
					cs = append(cs, store.Completion{ID: inv.ID, Owner: owner, State: fnhost.StateSucceeded,
						Output: json.RawMessage(`{"ok":true}`),
						Attempt: fnhost.Attempt{Number: inv.Attempt, StartedAt: now, FinishedAt: done,
							Outcome: fnhost.OutcomeSucceeded, Owner: owner}})
				}
				dropped, err := s.Complete(ctx, cs)
				if err != nil || len(dropped) != 0 {
					b.Errorf("complete: %v, dropped %d", err, len(dropped))
					return
				}
				mu.Lock()
				total += len(invs)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total
}

// BenchmarkBurnDown enqueues 100 000 no-op invocations in batches of 1000, then claims
// them in batches of 256 and completes each batch, with 1 and 4 concurrent workers, on
// a durable (synchronous=FULL) database. inv/s counts whole invocations (enqueue +
// claim + complete) per second of the whole run.
func BenchmarkBurnDown(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var enq, drain, cpu time.Duration
			for range b.N {
				b.StopTimer()
				s := benchOpen(b, benchOptions)
				b.StartTimer()
				cpu0 := cpuTime()
				start := time.Now()
				enqueueAll(b, s, burnTotal, burnEnqueueBatch, workers)
				mid := time.Now()
				if n := burn(b, s, workers); n != burnTotal {
					b.Fatalf("burned %d, want %d", n, burnTotal)
				}
				enq += mid.Sub(start)
				drain += time.Since(mid)
				cpu += cpuTime() - cpu0
				b.StopTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			n := float64(b.N * burnTotal)
			b.ReportMetric(n/(enq+drain).Seconds(), "inv/s")
			b.ReportMetric(n/enq.Seconds(), "enqueued/s")
			b.ReportMetric(n/drain.Seconds(), "claimed+completed/s")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/inv")
		})
	}
}

// BenchmarkEnqueueOneByOne has many goroutines enqueue one invocation per call: group
// commit turns them into few transactions.
func BenchmarkEnqueueOneByOne(b *testing.B) {
	s := benchOpen(b, sqlite.Options{})
	defer s.Close()
	b.SetParallelism(64)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			now := time.Now()
			_, err := s.Enqueue(ctx, []store.NewInvocation{{ID: fnhost.NewIDAt(now), Function: "noop",
				Trigger: "queue", Event: burnEvent, MaxAttempts: 3, CreatedAt: now}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "inv/s")
}

// BenchmarkRawInsert is the baseline: the same driver and pragmas (WAL,
// synchronous=FULL) inserting rows into a two-column table, 1000 rows per transaction
// through one prepared statement.
func BenchmarkRawInsert(b *testing.B) {
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	const perTx = 1000
	b.ResetTimer()
	start := time.Now()
	rows := 0
	for rows < b.N {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		st, err := tx.Prepare(`INSERT INTO t (v) VALUES (?)`)
		if err != nil {
			b.Fatal(err)
		}
		for range perTx {
			if _, err := st.Exec("01JD0000000000000000000000"); err != nil {
				b.Fatal(err)
			}
		}
		_ = st.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		rows += perTx
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkEnqueueReceipts enqueues 20 000 invocations with receipts (a trigger's
// first scan of a bucket) in batches of 1000, then the same objects again (a rescan
// that finds nothing new: every one a duplicate), and reports both rates.
func BenchmarkEnqueueReceipts(b *testing.B) {
	const total, batch = 20_000, 1000
	ctx := context.Background()
	var first, rescan time.Duration
	for range b.N {
		b.StopTimer()
		s := benchOpen(b, benchOptions)
		b.StartTimer()
		for pass := range 2 {
			start := time.Now()
			for off := 0; off < total; off += batch {
				invs := make([]store.NewInvocation, batch)
				now := time.Now()
				for i := range invs {
					invs[i] = store.NewInvocation{ID: fnhost.NewIDAt(now), Function: "ingest", Trigger: "s3",
						Event: burnEvent, MaxAttempts: 3, CreatedAt: now,
						ReceiptKey: fmt.Sprintf("bucket/incoming/%06d.csv", off+i), ReceiptVersion: "etag-1"}
				}
				res, err := s.Enqueue(ctx, invs)
				if err != nil {
					b.Fatal(err)
				}
				if res[0].Duplicate != (pass == 1) {
					b.Fatalf("pass %d: duplicate %t", pass, res[0].Duplicate)
				}
			}
			if pass == 0 {
				first += time.Since(start)
			} else {
				rescan += time.Since(start)
			}
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N * total)
	b.ReportMetric(n/first.Seconds(), "new/s")
	b.ReportMetric(n/rescan.Seconds(), "rescanned/s")
}
