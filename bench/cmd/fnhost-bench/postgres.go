package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/pgtest"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	pgstore "github.com/fnhost/fnhost/store/postgres"
)

var (
	flagPGN         = flag.Int("pg-n", 50000, "invocations (and River jobs) in each PostgreSQL burn-down")
	flagPGInstances = flag.Int("pg-instances", 3, "the PostgreSQL section measures 1 up to this many instances")
)

const (
	// pgBatch is how many invocations (jobs) one enqueue (InsertMany) carries before a
	// burn-down: the batch River's own benchmark inserts with.
	pgBatch = 5000
	// pgPoll is how often progress is read from the database, for fnhost and River
	// alike.
	pgPoll = 20 * time.Millisecond
	// The sustained runs submit in batches of pgSustainBatch from 4 submitters, the
	// backlog bounded to pgSustainBacklog, and measure after pgWarmUp.
	pgSustainBatch   = 100
	pgSustainBacklog = 5000
	pgWarmUp         = time.Second
	// pgDeadline bounds one burn-down.
	pgDeadline = 10 * time.Minute
)

// riverResult is the line bench/river prints.
type riverResult struct {
	Flavour   string  `json:"flavour"`
	Jobs      int64   `json:"jobs"`
	Instances int     `json:"instances"`
	Workers   int     `json:"workers"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// benchPostgres measures durable no-op invocations on a real PostgreSQL (internal/pgtest)
// with 1, 2 and 3 fnhost instances, each a `fnhost run` process of its own with
// -workers workers, and River on the same server in the same run as the baseline: the
// program in bench/river, with as many clients, each a process of its own with the same
// workers (MaxWorkers of its one queue), working as many no-op jobs. Each run has a
// schema of its own in the same database, and both read their progress from it the
// same way, every 20 ms. In the burn-down, the invocations (jobs) are all enqueued in
// batches of 5 000 before the instances start, a checkpoint follows, and the time runs
// from starting the processes until the database holds none left to run. The sustained
// row (1 instance) submits batches of 100 from 4 submitters while the instance works,
// the backlog bounded to 5 000 as in the SQLite sustained row, and counts what
// succeeded during -duration, after a second of warm-up, by finish time.
func benchPostgres(dir string) {
	metric := func(k int) string {
		return fmt.Sprintf("postgres: durable no-op invocations/s, %d %s (burn-down of %s, %d workers each, a process each)",
			k, plural(k, "instance"), thousands(int64(*flagPGN)), *flagWorkers)
	}
	srv := pgLaunch(metric(1), "bench")
	if srv == nil {
		return
	}
	defer srv.Close()
	ctx := context.Background()

	root := moduleRoot()
	fnhostBin := filepath.Join(dir, "fnhost")
	goBuild(root, fnhostBin, "./cmd/fnhost")
	riverDir := filepath.Join(root, "bench", "river")
	riverBin := filepath.Join(dir, "river-bench")
	goBuild(riverDir, riverBin, ".")
	river := "River " + riverVersion(riverDir)

	for k := 1; k <= *flagPGInstances; k++ {
		fn := fnhostBurnDown(ctx, srv, dir, fnhostBin, k)
		rv := riverRun(srv, riverBin, k, 0)
		add(row{metric(k), perSec(fn), fmt.Sprintf("%s %s (%d %s)", perSec(rv), river, k, plural(k, "client")),
			fmt.Sprintf("%.2f", fn/rv), "fnhost ahead " + check(fn > rv)})
	}
	fn := fnhostSustained(ctx, srv, dir, fnhostBin)
	rv := riverRun(srv, riverBin, 1, *flagDuration)
	add(row{fmt.Sprintf("postgres: durable no-op invocations/s, 1 instance, sustained (submitted while running, backlog ≤ %s, %d workers)",
		thousands(pgSustainBacklog), *flagWorkers),
		perSec(fn), fmt.Sprintf("%s %s (1 client)", perSec(rv), river), fmt.Sprintf("%.2f", fn/rv), "fnhost ahead " + check(fn > rv)})
}

// pgLaunch starts a PostgreSQL server for a section, with an empty database db. When
// PostgreSQL is not installed it adds a row that says the section was skipped (the
// benchmark is no CI) and returns nil.
func pgLaunch(metric, db string) *pgtest.Server {
	srv, err := pgtest.Launch()
	if errors.Is(err, pgtest.ErrNoBinary) {
		fmt.Fprintf(os.Stderr, "  %v\n", err)
		add(row{metric, "skipped: no PostgreSQL binaries (apt-get install postgresql, or set FNHOST_PG_BIN)", "", "", ""})
		return nil
	}
	if err != nil {
		fatal(err)
	}
	if err := srv.Exec(context.Background(), "postgres", "CREATE DATABASE "+db); err != nil {
		srv.Close()
		fatal(err)
	}
	return srv
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// moduleRoot is the directory of fnhost's go.mod.
func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fatal(fmt.Errorf("go env GOMOD: %w", err))
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		fatal(errors.New("run the benchmark inside the fnhost module"))
	}
	return filepath.Dir(mod)
}

// goBuild builds pkg of the module in dir into out.
func goBuild(dir, out, pkg string) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		fatal(fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b))
	}
}

// riverVersion is the version of River that bench/river requires.
func riverVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^\s*github\.com/riverqueue/river (v\S+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "?"
}

// riverRun runs bench/river: a burn-down of -pg-n jobs with k clients, or the sustained
// flavour for d when d > 0.
func riverRun(srv *pgtest.Server, bin string, k int, d time.Duration) float64 {
	schema := fmt.Sprintf("river_%d", k)
	if d > 0 {
		schema = "river_sustained"
	}
	args := []string{"-url", srv.URL("bench"), "-schema", schema, "-jobs", fmt.Sprint(*flagPGN),
		"-workers", fmt.Sprint(*flagWorkers), "-instances", fmt.Sprint(k), "-duration", d.String()}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fatal(fmt.Errorf("river-bench: %w", err))
	}
	var res riverResult
	if err := json.Unmarshal(out, &res); err != nil {
		fatal(fmt.Errorf("river-bench printed %q: %w", out, err))
	}
	fmt.Fprintf(os.Stderr, "  River, %d %s, %s: %s (%d jobs in %.2f s)\n", k, plural(k, "client"), res.Flavour, perSec(res.PerSecond), res.Jobs, res.Seconds)
	return res.PerSecond
}

// pgStore opens schema of the bench database (the store creates it) and a runtime that
// only submits to it, as fnhost's intake does.
func pgStore(ctx context.Context, srv *pgtest.Server, schema string) (string, store.Store, *runtime.Runtime) {
	url := srv.URL("bench") + "&schema=" + schema
	st, err := store.Open(ctx, url)
	if err != nil {
		fatal(err)
	}
	rt, err := runtime.New(runtime.Config{
		Store: st,
		Functions: []*runtime.Function{{Name: "noop", Handler: noopHandler(), Timeout: 30 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 3, InitialInterval: time.Second, MaxInterval: time.Minute}}},
	})
	if err != nil {
		fatal(err)
	}
	return url, st, rt
}

// pgSubmit submits n no-op invocations in batches of batch.
func pgSubmit(ctx context.Context, rt *runtime.Runtime, n, batch int) error {
	subs := make([]fnhost.Submission, 0, batch)
	for i := 0; i < n; i++ {
		subs = append(subs, fnhost.Submission{Function: "noop", Trigger: "bench", Event: fnhost.NewEvent("bench", "bench", "", json.RawMessage(`{}`))})
		if len(subs) == batch || i == n-1 {
			if _, err := rt.Submit(ctx, subs...); err != nil {
				return err
			}
			subs = subs[:0]
		}
	}
	return nil
}

// pgQueue reads the progress of a run from the database. bench/river reads River's
// jobs with statements of the same kinds: whether any is left, how many are left, how
// many finished in a window (by their finish time), and how many did not succeed.
type pgQueue struct{ pool *pgxpool.Pool }

func newPGQueue(st store.Store) pgQueue {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		fatal(fmt.Errorf("postgres: the store is a %T", st))
	}
	return pgQueue{ps.Pool()}
}

// anyLeft reports whether an invocation is still to run or running. Each half matches
// the predicate of a partial index.
func (q pgQueue) anyLeft(ctx context.Context) (bool, error) {
	var left bool
	err := q.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM invocations WHERE state IN ('pending', 'scheduled'))
		OR EXISTS (SELECT 1 FROM invocations WHERE state = 'running')`).Scan(&left)
	return left, err
}

// left counts the invocations still to run or running.
func (q pgQueue) left(ctx context.Context) (int64, error) {
	var n int64
	err := q.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM invocations WHERE state IN ('pending', 'scheduled'))
		+ (SELECT count(*) FROM invocations WHERE state = 'running')`).Scan(&n)
	return n, err
}

// finishedIn counts the invocations that succeeded in [from, to).
func (q pgQueue) finishedIn(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	err := q.pool.QueryRow(ctx, `SELECT count(*) FROM invocations
		WHERE state = 'succeeded' AND finished_at >= $1 AND finished_at < $2`, from, to).Scan(&n)
	return n, err
}

// check fails unless want invocations succeeded (want < 0: any number) and none ended
// otherwise.
func (q pgQueue) check(ctx context.Context, want int64) error {
	var ok, bad int64
	if err := q.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'succeeded'),
		count(*) FILTER (WHERE state IN ('failed', 'cancelled')) FROM invocations`).Scan(&ok, &bad); err != nil {
		return err
	}
	if bad > 0 || (want >= 0 && ok != want) {
		return fmt.Errorf("%d invocations succeeded, %d failed or were cancelled (want %d succeeded)", ok, bad, want)
	}
	return nil
}

// fnhostProcs are running `fnhost run` processes.
type fnhostProcs struct {
	cmds []*exec.Cmd
	out  []*bytes.Buffer
}

// startFnhost writes the manifest of a host on url with -workers workers and a builtin
// noop function, and starts k `fnhost run` processes with it.
func startFnhost(bin, dir, url string, k int) *fnhostProcs {
	yaml := fmt.Sprintf(`version: 1
host:
  listen: 127.0.0.1:0
  storage: %q
  workers: %d
  log: {level: warn}
  shutdown_timeout: 10s
functions:
  noop:
    handler: {builtin: noop}
`, url, *flagWorkers)
	path := filepath.Join(dir, "functions.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		fatal(err)
	}
	p := &fnhostProcs{}
	for range k {
		var out bytes.Buffer
		cmd := exec.Command(bin, "run", "-f", path)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			p.stop()
			fatal(err)
		}
		p.cmds, p.out = append(p.cmds, cmd), append(p.out, &out)
	}
	return p
}

// stop stops the processes gracefully and returns what they printed when one failed.
func (p *fnhostProcs) stop() error {
	for _, cmd := range p.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for i, cmd := range p.cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("fnhost run: %w\n%s", err, p.out[i]))
		}
	}
	return errors.Join(errs...)
}

// fnhostBurnDown enqueues -pg-n invocations, starts k instances and returns the rate
// at which they complete them all: from starting the processes until the database holds
// none left to run.
func fnhostBurnDown(ctx context.Context, srv *pgtest.Server, dir, bin string, k int) float64 {
	n := *flagPGN
	url, st, rt := pgStore(ctx, srv, fmt.Sprintf("fnhost_%d", k))
	defer st.Close()
	q := newPGQueue(st)
	if err := pgSubmit(ctx, rt, n, pgBatch); err != nil {
		fatal(err)
	}
	if err := srv.Exec(ctx, "bench", "CHECKPOINT"); err != nil {
		fatal(err)
	}
	start := time.Now()
	procs := startFnhost(bin, dir, url, k)
	var end time.Time
	for {
		left, err := q.anyLeft(ctx)
		if err == nil && time.Since(start) > pgDeadline {
			err = fmt.Errorf("invocations left after %s", pgDeadline)
		}
		if err != nil {
			fatal(errors.Join(err, procs.stop()))
		}
		if !left {
			end = time.Now()
			break
		}
		time.Sleep(pgPoll)
	}
	if err := errors.Join(procs.stop(), q.check(ctx, int64(n))); err != nil {
		fatal(err)
	}
	s := end.Sub(start).Seconds()
	rate := float64(n) / s
	fmt.Fprintf(os.Stderr, "  fnhost, %d %s, burn-down: %s (%d invocations in %.2f s)\n", k, plural(k, "instance"), perSec(rate), n, s)
	return rate
}

// fnhostSustained starts one instance and keeps submitting while it works, as
// bench/river -duration does for River, and returns the rate at which invocations
// succeeded during -duration, after a second of warm-up.
func fnhostSustained(ctx context.Context, srv *pgtest.Server, dir, bin string) float64 {
	url, st, rt := pgStore(ctx, srv, "fnhost_sustained")
	defer st.Close()
	q := newPGQueue(st)
	procs := startFnhost(bin, dir, url, 1)
	subCtx, cancel := context.WithCancel(ctx)
	var (
		backlog   atomic.Int64
		wg        sync.WaitGroup
		errs      = make(chan error, 5)
		submitted atomic.Int64
	)
	// The backlog (invocations not finished) is read from the database.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for subCtx.Err() == nil {
			n, err := q.left(subCtx)
			if err != nil {
				if subCtx.Err() == nil {
					errs <- err
				}
				return
			}
			backlog.Store(n)
			time.Sleep(pgPoll)
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for subCtx.Err() == nil {
				// Keep the backlog bounded: sustained throughput is what the host
				// completes while work keeps arriving, not how fast a queue fills.
				if backlog.Load() > pgSustainBacklog {
					time.Sleep(time.Millisecond)
					continue
				}
				if err := pgSubmit(subCtx, rt, pgSustainBatch, pgSustainBatch); err != nil {
					if subCtx.Err() == nil {
						errs <- err
					}
					return
				}
				submitted.Add(pgSustainBatch)
				backlog.Add(pgSustainBatch)
			}
		}()
	}
	time.Sleep(pgWarmUp)
	t0 := time.Now()
	time.Sleep(*flagDuration)
	t1 := time.Now()
	cancel()
	wg.Wait()
	close(errs)
	err := procs.stop() // flushes the last completions
	for e := range errs {
		err = errors.Join(err, e)
	}
	if err != nil {
		fatal(err)
	}
	n, err := q.finishedIn(ctx, t0, t1)
	if err == nil {
		err = q.check(ctx, -1)
	}
	if err != nil {
		fatal(err)
	}
	rate := float64(n) / t1.Sub(t0).Seconds()
	fmt.Fprintf(os.Stderr, "  fnhost, 1 instance, sustained: %s (%d invocations in %.2f s, %d submitted)\n",
		perSec(rate), n, t1.Sub(t0).Seconds(), submitted.Load())
	return rate
}
