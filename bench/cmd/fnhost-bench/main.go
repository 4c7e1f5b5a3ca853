// Command fnhost-bench measures fnhost beside baselines taken in the same run on the
// same machine, so that the ratios hold on a noisy machine: raw SQLite inserts for the
// durable executor, a bare net/http handler for HTTP intake, a bare fork/exec for exec
// handlers, a bare webhook receiver and ListObjectsV2 loop beside the s3 trigger on real
// MinIO and versitygw servers. It prints one table; `make bench` runs it.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	_ "modernc.org/sqlite"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/host"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store/sqlite"
)

var (
	flagN        = flag.Int("n", 100000, "invocations in the burn-down")
	flagDuration = flag.Duration("duration", 10*time.Second, "length of the sustained and HTTP runs")
	flagWorkers  = flag.Int("workers", 128, "host workers for the no-op runs")
	flagConns    = flag.Int("conns", 64, "concurrent HTTP connections")
	flagExecN    = flag.Int("exec-n", 2000, "exec invocations")
	flagOnly     = flag.String("only", "", "run only the sections whose name contains this")
	flagProfile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (runs the sections in this process)")
	flagChild    = flag.Bool("child", false, "run the sections named by -only here and print their rows as JSON")
)

// row is one line of the result table.
type row struct {
	Metric, Fnhost, Baseline, Ratio, Target string
}

// runChild runs one section in a new process of this program and takes its rows.
func runChild(section string) {
	args := []string{"-child", "-only", section}
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "only" && f.Name != "child" {
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fatal(fmt.Errorf("section %s: %w", section, err))
	}
	var got []row
	if err := json.Unmarshal(out, &got); err != nil {
		fatal(fmt.Errorf("section %s: %w", section, err))
	}
	rows = append(rows, got...)
}

var rows []row

func add(r row) {
	rows = append(rows, r)
	fmt.Fprintf(os.Stderr, "  %s: %s (baseline %s)\n", r.Metric, r.Fnhost, r.Baseline)
}

func main() {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "fnhost-bench")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(tmp)
	if *flagProfile != "" {
		f, err := os.Create(*flagProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	sections := []struct {
		name string
		run  func(dir string)
	}{
		{"burndown", benchBurnDown},
		{"sustained", benchSustained},
		{"http", benchHTTP},
		{"exec", benchExec},
		{"fs", benchFS},
		{"cron", benchCron},
		{"s3-webhook", benchS3Webhook},
		{"s3-poll", benchS3Poll},
		{"s3-intake", benchS3Intake},
		{"postgres", benchPostgres},
		{"dashboard", benchDashboard},
	}
	for i, s := range sections {
		if *flagOnly != "" && !strings.Contains(s.name, *flagOnly) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", s.name)
		if !*flagChild && *flagProfile == "" {
			// Each section runs in a process of its own, so that none measures the heap,
			// goroutines or page cache another left behind.
			runChild(s.name)
			continue
		}
		dir := filepath.Join(tmp, fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatal(err)
		}
		s.run(dir)
	}
	if *flagChild {
		if err := json.NewEncoder(os.Stdout).Encode(rows); err != nil {
			fatal(err)
		}
		return
	}

	fmt.Printf("\nfnhost %s benchmark — %s, %d CPUs\n\n", fnhost.Version, time.Now().Format(time.DateTime), numCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tFNHOST\tBASELINE\tRATIO\tTARGET")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Metric, r.Fnhost, r.Baseline, r.Ratio, r.Target)
	}
	tw.Flush()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fnhost-bench:", err)
	os.Exit(1)
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(string(out), &n)
	return n
}

// rawInserts is the SQLite baseline: rows/s in 1000-row transactions, WAL, synchronous
// FULL, with the same driver fnhost uses.
func rawInserts(dir string) float64 {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "raw.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id TEXT PRIMARY KEY, function TEXT, state TEXT, payload BLOB, created INTEGER)`); err != nil {
		fatal(err)
	}
	const total, per = 100000, 1000
	payload := []byte(`{"specversion":"1.0","id":"x","source":"bench","type":"bench","data":{}}`)
	start := time.Now()
	for i := 0; i < total; i += per {
		tx, err := db.Begin()
		if err != nil {
			fatal(err)
		}
		stmt, err := tx.Prepare(`INSERT INTO t VALUES (?, 'noop', 'pending', ?, ?)`)
		if err != nil {
			fatal(err)
		}
		for j := 0; j < per; j++ {
			if _, err := stmt.Exec(fnhost.NewID(), payload, time.Now().UnixMicro()); err != nil {
				fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			fatal(err)
		}
	}
	return total / time.Since(start).Seconds()
}

// counting wraps a handler and signals when n invocations have run.
type counting struct {
	n    int64
	done atomic.Int64
	all  chan struct{}
	h    fnhost.Handler
}

func (c *counting) Invoke(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	res, err := c.h.Invoke(ctx, ev)
	if c.done.Add(1) == c.n {
		close(c.all)
	}
	return res, err
}

func newRuntime(dir string, workers int, h fnhost.Handler) (*runtime.Runtime, *sqlite.Store) {
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "fnhost.db"), sqlite.Options{})
	if err != nil {
		fatal(err)
	}
	rt, err := runtime.New(runtime.Config{
		Store: st, Workers: workers,
		Functions: []*runtime.Function{{Name: "noop", Handler: h, Timeout: 30 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 3, InitialInterval: time.Second, MaxInterval: time.Minute}}},
	})
	if err != nil {
		fatal(err)
	}
	return rt, st
}

func submitN(rt *runtime.Runtime, n int) {
	const batch = 1000
	subs := make([]fnhost.Submission, 0, batch)
	for i := 0; i < n; i++ {
		subs = append(subs, fnhost.Submission{Function: "noop", Trigger: "bench", Event: fnhost.NewEvent("bench", "bench", "", json.RawMessage(`{}`))})
		if len(subs) == batch || i == n-1 {
			if _, err := rt.Submit(context.Background(), subs...); err != nil {
				fatal(err)
			}
			subs = subs[:0]
		}
	}
}

func noopHandler() fnhost.Handler {
	h, ok := functions.Builtins.Lookup("noop")
	if !ok {
		fatal(fmt.Errorf("no builtin noop"))
	}
	return h
}

func benchBurnDown(dir string) {
	raw := rawInserts(dir)
	n := *flagN
	c := &counting{n: int64(n), all: make(chan struct{}), h: noopHandler()}
	rt, st := newRuntime(dir, *flagWorkers, c)
	defer st.Close()
	submitN(rt, n)
	start := time.Now()
	if err := rt.Start(context.Background()); err != nil {
		fatal(err)
	}
	<-c.all
	if err := rt.Stop(context.Background()); err != nil { // flushes the last completions
		fatal(err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	add(row{fmt.Sprintf("burn-down of %d durable no-op invocations (SQLite)", n), perSec(rate), perSec(raw) + " raw inserts",
		fmt.Sprintf("%.2f", rate/raw), "≥ 30 000/s"})
}

func benchSustained(dir string) {
	c := &counting{n: -1, all: make(chan struct{}), h: noopHandler()}
	rt, st := newRuntime(dir, *flagWorkers, c)
	defer st.Close()
	if err := rt.Start(context.Background()); err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *flagDuration+time.Second)
	defer cancel()
	var submitted atomic.Int64
	const maxBacklog = 5000
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs := make([]fnhost.Submission, 100)
			for ctx.Err() == nil {
				// Keep the backlog bounded: sustained throughput is what the host
				// completes while work keeps arriving, not how fast a queue fills.
				if submitted.Load()-c.done.Load() > maxBacklog {
					time.Sleep(time.Millisecond)
					continue
				}
				for i := range subs {
					subs[i] = fnhost.Submission{Function: "noop", Trigger: "bench", Event: fnhost.NewEvent("bench", "bench", "", json.RawMessage(`{}`))}
				}
				if _, err := rt.Submit(ctx, subs...); err != nil {
					return
				}
				submitted.Add(int64(len(subs)))
			}
		}()
	}
	time.Sleep(time.Second) // warm up
	d0, t0 := c.done.Load(), time.Now()
	time.Sleep(*flagDuration)
	d1, t1 := c.done.Load(), time.Now()
	cancel()
	wg.Wait()
	_ = rt.Stop(context.Background())
	rate := float64(d1-d0) / t1.Sub(t0).Seconds()
	backlog := submitted.Load() - c.done.Load()
	add(row{fmt.Sprintf("sustained no-op invocations, submitted while running (backlog ≤ %d, %d at end)", maxBacklog, backlog), perSec(rate), "", "", "≥ 20 000/s"})
}

// load drives url with conns concurrent keep-alive connections for d and returns the
// request rate and the latency percentiles. Every answer must have status want.
func load(url string, body []byte, conns int, d time.Duration, want int) (float64, time.Duration, time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var bad atomic.Int64
	run := func(d time.Duration, record bool) int {
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		var count atomic.Int64
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine := make([]time.Duration, 0, 4096)
				for time.Now().Before(deadline) {
					t := time.Now()
					resp, err := client.Post(url, "application/json", bytes.NewReader(body))
					if err != nil {
						bad.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != want {
						bad.Add(1)
					}
					mine = append(mine, time.Since(t))
					count.Add(1)
				}
				if record {
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return int(count.Load())
	}
	run(time.Second, false)
	start := time.Now()
	n := run(d, true)
	rate := float64(n) / time.Since(start).Seconds()
	if b := bad.Load(); b > 0 {
		fmt.Fprintf(os.Stderr, "  warning: %d requests to %s failed or answered another status than %d\n", b, url, want)
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, 0, 0
	}
	return rate, lat[len(lat)/2], lat[len(lat)*99/100]
}

func benchHTTP(dir string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})}
	go bare.Serve(ln)
	d := *flagDuration / 2
	bareRate, bareP50, bareP99 := load("http://"+ln.Addr().String()+"/", []byte(`{"name":"Ada"}`), *flagConns, d, 200)
	bare.Close()

	yaml := fmt.Sprintf(`version: 1
host:
  listen: 127.0.0.1:0
  storage: sqlite:%s
  workers: %d
  log: {level: warn}
  shutdown_timeout: 1s
functions:
  noop:
    handler: {builtin: noop}
  inbox:
    # Async intake is measured with the executor idle: the one slot of this function
    # is held by a long sleep, so what is timed is accepting and persisting.
    handler: {builtin: sleep}
    concurrency: 1
    timeout: 10m
`, filepath.Join(dir, "http.db"), *flagWorkers)
	m, err := manifest.Parse([]byte(yaml), filepath.Join(dir, "functions.yaml"), os.LookupEnv)
	if err != nil {
		fatal(err)
	}
	h, err := host.New(m, host.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	base := "http://" + h.Addr()
	syncRate, syncP50, syncP99 := load(base+"/api/v1/functions/noop/invocations?sync=1", []byte(`{"name":"Ada"}`), *flagConns, d, 200)
	asyncRate, asyncP50, asyncP99 := load(base+"/api/v1/functions/inbox/invocations", []byte(`{"duration":"10m"}`), *flagConns, d, 202)
	cancel()
	<-done

	bareCell := fmt.Sprintf("%s, p50 %s, p99 %s", perSec(bareRate), ms(bareP50), ms(bareP99))
	add(row{fmt.Sprintf("sync invoke over HTTP, %d connections", *flagConns),
		fmt.Sprintf("%s, p50 %s, p99 %s", perSec(syncRate), ms(syncP50), ms(syncP99)), bareCell + " bare net/http",
		fmt.Sprintf("%.2f rate, %.2f p99", syncRate/bareRate, float64(syncP99)/float64(bareP99)), "≥ 0.50 rate, ≤ 2.0 p99"})
	add(row{fmt.Sprintf("async intake (202 once persisted, executor idle), %d connections", *flagConns),
		fmt.Sprintf("%s, p50 %s, p99 %s", perSec(asyncRate), ms(asyncP50), ms(asyncP99)), bareCell + " bare net/http",
		fmt.Sprintf("%.2f rate", asyncRate/bareRate), "≥ 0.50 rate"})
}

func benchExec(dir string) {
	const conc = 4
	n := *flagExecN
	// Baseline: fork/exec of /bin/true at the same concurrency.
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := exec.Command("/bin/true").Run(); err != nil {
					fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	bare := float64(n) / time.Since(start).Seconds()

	h, err := functions.New(&manifest.Function{Name: "noop", Handler: manifest.Handler{Exec: []string{"/bin/true"}, Dir: dir, GracePeriod: time.Second}}, functions.Options{})
	if err != nil {
		fatal(err)
	}
	c := &counting{n: int64(n), all: make(chan struct{}), h: h}
	rt, st := newRuntime(dir, conc, c)
	defer st.Close()
	submitN(rt, n)
	start = time.Now()
	if err := rt.Start(context.Background()); err != nil {
		fatal(err)
	}
	<-c.all
	_ = rt.Stop(context.Background())
	rate := float64(n) / time.Since(start).Seconds()
	add(row{fmt.Sprintf("exec handler /bin/true, %d at once, durable", conc), perSec(rate), perSec(bare) + " bare fork/exec",
		fmt.Sprintf("%.2f× the time", bare/rate), "≤ 1.5× the time"})
}

func perSec(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%s/s", thousands(int64(v)))
	default:
		return fmt.Sprintf("%.0f/s", v)
	}
}

func thousands(v int64) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
