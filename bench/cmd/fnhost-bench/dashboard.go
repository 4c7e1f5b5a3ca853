package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/host"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
)

var (
	flagDashN     = flag.Int("dash-n", 1_000_000, "invocations in the store of the dashboard section")
	flagDashBase  = flag.Int("dash-base", 1000, "invocations in the store of the dashboard's baseline")
	flagDashTimes = flag.Int("dash-times", 15, "requests per page in the dashboard section")
)

// dashFunctions are the functions of the dashboard's store: ten, one of them consuming
// a queue.
const dashFunctions = 10

// dashManifest is the host whose dashboard the section measures.
func dashManifest(dir string) *manifest.Manifest {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nhost:\n  listen: 127.0.0.1:0\n  storage: sqlite:%s/unused.db\n  log: {level: error}\nfunctions:\n", dir)
	for i := range dashFunctions {
		fmt.Fprintf(&b, "  f%d:\n    handler: {builtin: noop}\n", i)
		if i == 0 {
			b.WriteString("    triggers:\n      - queue: {name: orders}\n")
		}
	}
	path := filepath.Join(dir, "functions.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fatal(err)
	}
	m, err := manifest.Load(path)
	if err != nil {
		fatal(err)
	}
	return m
}

// fillDashboard stores n invocations created over the last seven days: 98.9% succeeded,
// 1% failed, 0.1% scheduled for later; 90% from a queue, 9% from HTTP, 1% from cron;
// spread over the functions. Every finished one is stored with its attempt, as a host
// stores a short synchronous invocation, so the throughput buckets fill too.
func fillDashboard(ctx context.Context, st store.Store, n int) (sample string) {
	now := time.Now().UTC()
	span := 7 * 24 * time.Hour
	ev := json.RawMessage(`{"specversion":"1.0","id":"x","source":"bench","type":"fnhost.bench","data":{"order":42,"items":["a","b"]}}`)
	const batch = 2000
	invs := make([]store.NewInvocation, 0, batch)
	flush := func() {
		if _, err := st.Enqueue(ctx, invs); err != nil {
			fatal(fmt.Errorf("fill the dashboard's store: %w", err))
		}
		invs = invs[:0]
	}
	for i := range n {
		created := now.Add(-span + time.Duration(float64(span)*float64(i)/float64(n)))
		inv := store.NewInvocation{
			ID: fnhost.NewIDAt(created), Function: fmt.Sprintf("f%d", i%dashFunctions), Trigger: "queue",
			Event: ev, MaxAttempts: 3, CreatedAt: created,
		}
		switch {
		case i%100 == 7:
			inv.Trigger = "cron"
		case i%10 == 3:
			inv.Trigger = "http"
		}
		switch {
		case i%1000 == 11:
			inv.RunAt = now.Add(time.Hour)
		case i%100 == 5:
			inv.Owner = "bench"
			inv.Completion = &store.Completion{State: fnhost.StateFailed, Error: "exit status 1",
				Attempt: fnhost.Attempt{FinishedAt: created.Add(8 * time.Millisecond), Outcome: fnhost.OutcomeFailed,
					Error: "exit status 1", Log: "Traceback (most recent call last):\n  ...\nValueError: bad order\n"}}
		default:
			inv.Owner = "bench"
			inv.Completion = &store.Completion{State: fnhost.StateSucceeded, Output: json.RawMessage(`{"ok":true}`),
				Attempt: fnhost.Attempt{FinishedAt: created.Add(5 * time.Millisecond), Outcome: fnhost.OutcomeSucceeded,
					Log: "processed order 42\n"}}
		}
		if i == n/2 {
			sample = inv.ID
		}
		invs = append(invs, inv)
		if len(invs) == batch {
			flush()
		}
	}
	if len(invs) > 0 {
		flush()
	}
	return sample
}

// dashPages are the pages the section requests; {ID} is an invocation in the middle of
// the history. cached pages read the counts (and the overview) the dashboard keeps for
// a second.
var dashPages = []struct {
	name, path string
	cached     bool
}{
	{"overview", "/dashboard/", true},
	{"invocations", "/dashboard/invocations", false},
	{"invocations, state failed", "/dashboard/invocations?state=failed", false},
	{"invocations, function and state", "/dashboard/invocations?function=f5&state=failed", false},
	{"invocations, trigger cron (1%)", "/dashboard/invocations?trigger=cron", false},
	{"invocations, a trigger none has", "/dashboard/invocations?trigger=fs", false},
	{"invocations, last hour", "/dashboard/invocations?range=1h", false},
	{"invocations, a page 3 days back", "/dashboard/invocations?cursor={CURSOR}", false},
	{"invocation detail", "/dashboard/invocations/{ID}", false},
	{"functions", "/dashboard/functions", true},
	{"queues", "/dashboard/queues", true},
	{"failed", "/dashboard/failed", true},
	{"servers", "/dashboard/servers", false},
}

// pageTimes requests every page of dashPages times times through the host's handler
// (server time: no network) and returns the times of each, sorted. The cached pages are
// requested a second apart, so that each request reads the store rather than the
// dashboard's one-second caches.
func pageTimes(h *host.Host, sample string, times int) map[string][]time.Duration {
	cursor := fnhost.MinIDAt(time.Now().Add(-3 * 24 * time.Hour))
	out := map[string][]time.Duration{}
	handler := h.Handler()
	for _, p := range dashPages {
		path := strings.NewReplacer("{ID}", sample, "{CURSOR}", cursor).Replace(p.path)
		for i := range times {
			if p.cached && i > 0 {
				time.Sleep(1100 * time.Millisecond)
			}
			req := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
			rec := httptest.NewRecorder()
			start := time.Now()
			handler.ServeHTTP(rec, req)
			took := time.Since(start)
			if rec.Code != http.StatusOK {
				body, _ := io.ReadAll(rec.Body)
				fatal(fmt.Errorf("dashboard %s: status %d: %s", path, rec.Code, body))
			}
			out[p.name] = append(out[p.name], took)
		}
		slices.Sort(out[p.name])
	}
	return out
}

// runDashHost runs a host on st for the duration of fn.
func runDashHost(dir string, st store.Store, fn func(h *host.Host)) {
	h, err := host.New(dashManifest(dir), host.WithStore(st), host.WithLogOutput(io.Discard))
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	h.Addr()
	fn(h)
	cancel()
	if err := <-done; err != nil {
		fatal(err)
	}
}

// benchDashboard measures the server time of every dashboard page with -dash-n
// invocations in the store, on SQLite and on PostgreSQL, beside the same pages with
// -dash-base invocations in the same run.
func benchDashboard(dir string) {
	ctx := context.Background()
	// analyze, when set, brings the planner's statistics up to date after the fill, as
	// PostgreSQL's autovacuum would.
	var analyze func()
	measure := func(kind string, open func(name string) store.Store) {
		base := open("base")
		sampleBase := fillDashboard(ctx, base, *flagDashBase)
		big := open("big")
		start := time.Now()
		sample := fillDashboard(ctx, big, *flagDashN)
		fmt.Fprintf(os.Stderr, "  %s: stored %d invocations in %s (samples %s, %s)\n", kind, *flagDashN, time.Since(start).Round(time.Second), sampleBase, sample)
		if analyze != nil {
			analyze()
		}
		var small, large map[string][]time.Duration
		runDashHost(filepath.Join(dir, kind+"-base"), base, func(h *host.Host) { small = pageTimes(h, sampleBase, *flagDashTimes) })
		runDashHost(filepath.Join(dir, kind+"-big"), big, func(h *host.Host) { large = pageTimes(h, sample, *flagDashTimes) })
		base.Close()
		big.Close()
		for _, p := range dashPages {
			l, s := large[p.name], small[p.name]
			worst := l[len(l)-1]
			add(row{
				Metric:   fmt.Sprintf("dashboard on %s, %s invocations: %s (server time, p50 / max of %d)", kind, thousands(int64(*flagDashN)), p.name, len(l)),
				Fnhost:   ms(l[len(l)/2]) + " / " + ms(worst),
				Baseline: fmt.Sprintf("%s / %s with %s", ms(s[len(s)/2]), ms(s[len(s)-1]), thousands(int64(*flagDashBase))),
				Ratio:    fmt.Sprintf("%.1f", float64(l[len(l)/2])/float64(max(s[len(s)/2], time.Microsecond))),
				Target:   "max ≤ 200 ms " + check(worst <= 200*time.Millisecond),
			})
		}
	}

	measure("SQLite", func(name string) store.Store {
		d := filepath.Join(dir, "sqlite-"+name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			fatal(err)
		}
		st, err := sqlite.Open(ctx, filepath.Join(d, "fnhost.db"), sqlite.Options{})
		if err != nil {
			fatal(err)
		}
		return st
	})

	srv := pgLaunch("dashboard on PostgreSQL", "dash")
	if srv == nil {
		return
	}
	defer srv.Close()
	analyze = func() {
		if err := srv.Exec(ctx, "dash", "VACUUM ANALYZE"); err != nil {
			fatal(err)
		}
	}
	measure("PostgreSQL", func(name string) store.Store {
		st, err := store.Open(ctx, srv.URL("dash")+"&schema="+name)
		if err != nil {
			fatal(err)
		}
		return st
	})
}
