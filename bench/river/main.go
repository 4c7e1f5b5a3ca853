// Command river-bench is the River baseline of fnhost's PostgreSQL benchmark: it works
// no-op jobs with River (riverpgxv5) on a PostgreSQL database and prints one JSON line
// with the rate. It is a module of its own so that River's dependencies stay out of
// fnhost's.
//
//	river-bench -url postgres://… -jobs 50000 -workers 128 -instances 2
//
// It drops and re-creates the schema named by -schema (default "river"), migrates
// River's tables into it (rivermigrate), then runs in one of two flavours:
//
//   - burn-down (the default): inserts -jobs no-op jobs with InsertMany in batches of
//     5 000 before any client runs, then starts -instances River clients, each in a
//     process of its own with -workers workers on one queue, and measures the time from
//     starting the processes until the database holds no job left to run (a
//     CHECKPOINT between the inserts and the start keeps theirs out of the run);
//   - sustained (-duration D): starts the clients first and keeps inserting (batches of
//     100 from 4 inserters, the backlog of unfinished jobs bounded to 5 000) while they
//     work, and counts the jobs completed during D, after a second of warm-up, by their
//     finalized_at.
//
// Progress is read from the database every 20 ms (whether any job is left; in the
// sustained flavour how many), so a job counts once its completion is committed. The
// clients use River's defaults except FetchCooldown and FetchPollInterval, which are
// set as River's own benchmark (`river bench`) sets them for throughput: 2 ms and 20 ms
// unless -fetch-cooldown and -fetch-poll-interval say otherwise (0 keeps River's
// defaults, 100 ms and 1 s, under which a client fetches at most MaxWorkers jobs per
// 100 ms).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

var (
	flagURL           = flag.String("url", "", "PostgreSQL URL (postgres://user@host:port/db)")
	flagSchema        = flag.String("schema", "river", "schema for River's tables; dropped and re-created")
	flagJobs          = flag.Int("jobs", 50000, "jobs in the burn-down")
	flagWorkers       = flag.Int("workers", 128, "workers of each client (MaxWorkers of its one queue)")
	flagInstances     = flag.Int("instances", 1, "River clients, each in a process of its own")
	flagDuration      = flag.Duration("duration", 0, "run the sustained flavour for this long instead of the burn-down")
	flagFetchCooldown = flag.Duration("fetch-cooldown", 2*time.Millisecond, "River's FetchCooldown (0: River's default)")
	flagFetchPoll     = flag.Duration("fetch-poll-interval", 20*time.Millisecond, "River's FetchPollInterval (0: River's default)")
	flagClient        = flag.Bool("client", false, "run one River client until standard input closes (used by the command itself)")
)

const (
	insertBatch    = 5000
	pollEvery      = 20 * time.Millisecond
	deadline       = 10 * time.Minute
	sustainBatch   = 100
	sustainBacklog = 5000
	sustainWarmUp  = time.Second
)

// NoopArgs are the arguments of the no-op job.
type NoopArgs struct{}

// Kind names the job.
func (NoopArgs) Kind() string { return "noop" }

// NoopWorker works a job by doing nothing.
type NoopWorker struct {
	river.WorkerDefaults[NoopArgs]
}

// Work returns at once.
func (NoopWorker) Work(context.Context, *river.Job[NoopArgs]) error { return nil }

// result is the line the command prints.
type result struct {
	Flavour   string  `json:"flavour"`
	Jobs      int64   `json:"jobs"`
	Instances int     `json:"instances"`
	Workers   int     `json:"workers"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

func main() {
	flag.Parse()
	if *flagURL == "" {
		fatal(errors.New("-url is required"))
	}
	ctx := context.Background()
	if *flagClient {
		if err := runClient(ctx); err != nil {
			fatal(err)
		}
		return
	}
	if *flagJobs <= 0 || *flagWorkers <= 0 || *flagInstances <= 0 {
		fatal(errors.New("-jobs, -workers and -instances must be positive"))
	}
	pool, err := pgxpool.New(ctx, *flagURL)
	if err != nil {
		fatal(err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		fatal(err)
	}
	client, err := newClient(pool, false)
	if err != nil {
		fatal(err)
	}
	var res result
	if *flagDuration > 0 {
		res, err = sustained(ctx, pool, client)
	} else {
		res, err = burnDown(ctx, pool, client)
	}
	if err != nil {
		fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "river-bench:", err)
	os.Exit(1)
}

// migrate drops and re-creates the schema and migrates River's tables into it.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	schema := pgx.Identifier{*flagSchema}.Sanitize()
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: *flagSchema, Logger: logger()})
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newClient makes a River client on pool; a working one has -workers workers on the
// default queue, the others only insert.
func newClient(pool *pgxpool.Pool, work bool) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, NoopWorker{})
	cfg := &river.Config{
		Schema:            *flagSchema,
		Logger:            logger(),
		Workers:           workers,
		FetchCooldown:     *flagFetchCooldown,
		FetchPollInterval: *flagFetchPoll,
	}
	if work {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: *flagWorkers}}
	}
	return river.NewClient(riverpgxv5.New(pool), cfg)
}

// runClient works jobs with one client until standard input closes.
func runClient(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, *flagURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := newClient(pool, true)
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return client.Stop(stop)
}

// clients are the processes that run one client each.
type clients struct {
	cmds  []*exec.Cmd
	stdin []io.WriteCloser
}

// startClients starts -instances processes of this command in -client mode.
func startClients() (*clients, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &clients{}
	for range *flagInstances {
		cmd := exec.Command(self, "-client", "-url", *flagURL, "-schema", *flagSchema, "-workers", fmt.Sprint(*flagWorkers),
			"-fetch-cooldown", flagFetchCooldown.String(), "-fetch-poll-interval", flagFetchPoll.String())
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			c.stop()
			return nil, err
		}
		c.cmds, c.stdin = append(c.cmds, cmd), append(c.stdin, in)
	}
	return c, nil
}

// stop lets every client stop and waits for it.
func (c *clients) stop() error {
	for _, in := range c.stdin {
		in.Close()
	}
	var errs []error
	for _, cmd := range c.cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("client: %w", err))
		}
	}
	return errors.Join(errs...)
}

// unfinished are the states of a job still to run or running.
const unfinished = `state IN ('available', 'pending', 'retryable', 'running', 'scheduled')`

// table is River's job table in its schema.
func table() string { return pgx.Identifier{*flagSchema, "river_job"}.Sanitize() }

// anyLeft reports whether a job is still to run or running.
func anyLeft(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var left bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table()+` WHERE `+unfinished+`)`).Scan(&left)
	return left, err
}

// left counts the jobs still to run or running.
func left(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table()+` WHERE `+unfinished).Scan(&n)
	return n, err
}

// finishedIn counts the jobs completed in [from, to).
func finishedIn(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table()+`
		WHERE state = 'completed' AND finalized_at >= $1 AND finalized_at < $2`, from, to).Scan(&n)
	return n, err
}

// check fails unless want jobs completed (want < 0: any number) and none ended otherwise.
func check(ctx context.Context, pool *pgxpool.Pool, want int64) error {
	var ok, bad int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed'),
		count(*) FILTER (WHERE state IN ('discarded', 'cancelled')) FROM `+table()).Scan(&ok, &bad); err != nil {
		return err
	}
	if bad > 0 || (want >= 0 && ok != want) {
		return fmt.Errorf("%d jobs completed, %d discarded or cancelled (want %d completed)", ok, bad, want)
	}
	return nil
}

// insert inserts n no-op jobs with InsertMany in batches of at most batch.
func insert(ctx context.Context, client *river.Client[pgx.Tx], n, batch int) error {
	params := make([]river.InsertManyParams, 0, batch)
	for i := 0; i < n; i++ {
		params = append(params, river.InsertManyParams{Args: NoopArgs{}})
		if len(params) == batch || i == n-1 {
			if _, err := client.InsertMany(ctx, params); err != nil {
				return err
			}
			params = params[:0]
		}
	}
	return nil
}

func burnDown(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx]) (result, error) {
	n := *flagJobs
	if err := insert(ctx, client, n, insertBatch); err != nil {
		return result{}, err
	}
	// A checkpoint now keeps the one the inserts call for out of the measured run. It
	// needs a superuser (or pg_checkpoint); without one the run goes on.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		fmt.Fprintln(os.Stderr, "river-bench: no checkpoint before the run:", err)
	}
	start := time.Now()
	cl, err := startClients()
	if err != nil {
		return result{}, err
	}
	var end time.Time
	for {
		more, err := anyLeft(ctx, pool)
		if err == nil && time.Since(start) > deadline {
			err = fmt.Errorf("jobs left after %s", deadline)
		}
		if err != nil {
			return result{}, errors.Join(err, cl.stop())
		}
		if !more {
			end = time.Now()
			break
		}
		time.Sleep(pollEvery)
	}
	if err := errors.Join(cl.stop(), check(ctx, pool, int64(n))); err != nil {
		return result{}, err
	}
	s := end.Sub(start).Seconds()
	return result{Flavour: "burn-down", Jobs: int64(n), Instances: *flagInstances, Workers: *flagWorkers, Seconds: s, PerSecond: float64(n) / s}, nil
}

func sustained(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx]) (result, error) {
	cl, err := startClients()
	if err != nil {
		return result{}, err
	}
	insCtx, cancel := context.WithCancel(ctx)
	var (
		backlog atomic.Int64
		wg      sync.WaitGroup
		errs    = make(chan error, 5)
	)
	// The backlog (jobs not finished) is read from the database.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for insCtx.Err() == nil {
			n, err := left(insCtx, pool)
			if err != nil {
				if insCtx.Err() == nil {
					errs <- err
				}
				return
			}
			backlog.Store(n)
			time.Sleep(pollEvery)
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for insCtx.Err() == nil {
				// Keep the backlog bounded: sustained throughput is what the clients
				// complete while work keeps arriving, not how fast a queue fills.
				if backlog.Load() > sustainBacklog {
					time.Sleep(time.Millisecond)
					continue
				}
				if err := insert(insCtx, client, sustainBatch, sustainBatch); err != nil {
					if insCtx.Err() == nil {
						errs <- err
					}
					return
				}
				backlog.Add(sustainBatch)
			}
		}()
	}
	time.Sleep(sustainWarmUp)
	t0 := time.Now()
	time.Sleep(*flagDuration)
	t1 := time.Now()
	cancel()
	wg.Wait()
	close(errs)
	err = cl.stop() // flushes the last completions
	for e := range errs {
		err = errors.Join(err, e)
	}
	if err != nil {
		return result{}, err
	}
	n, err := finishedIn(ctx, pool, t0, t1)
	if err == nil {
		err = check(ctx, pool, -1)
	}
	if err != nil {
		return result{}, err
	}
	s := t1.Sub(t0).Seconds()
	return result{Flavour: "sustained", Jobs: n, Instances: *flagInstances, Workers: *flagWorkers, Seconds: s, PerSecond: float64(n) / s}, nil
}
