package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/pgtest"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/postgres"
	"github.com/fnhost/fnhost/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	dbOnce  sync.Once
	dbURL   string
	dbErr   error
	schemas atomic.Int64
)

// database returns the URL of the database the tests share, on the shared server.
func database(t testing.TB) string {
	t.Helper()
	srv := pgtest.Shared(t)
	dbOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if dbErr = srv.Exec(ctx, "postgres", "CREATE DATABASE fnhost_test"); dbErr == nil {
			dbURL = srv.URL("fnhost_test")
		}
	})
	if dbErr != nil {
		t.Fatalf("create the test database: %v", dbErr)
	}
	return dbURL
}

// location returns the location of a new, empty store: a schema of its own in the
// shared database.
func location(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("%s&schema=t%d", database(t), schemas.Add(1))
}

// open opens the store at loc and closes it when the test ends.
func open(t testing.TB, loc string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), loc)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, location(t)) })
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newInv(fn string, created time.Time) store.NewInvocation {
	return store.NewInvocation{ID: fnhost.NewIDAt(created), Function: fn, Trigger: "queue",
		Event: json.RawMessage(`{"specversion":"1.0"}`), MaxAttempts: 3, CreatedAt: created}
}

func TestStoreOpenRegistered(t *testing.T) {
	t.Parallel()
	loc := location(t)
	for _, l := range []string{loc, strings.Replace(loc, "postgres://", "postgresql://", 1)} {
		s, err := store.Open(context.Background(), l)
		if err != nil {
			t.Fatalf("store.Open(%s): %v", l, err)
		}
		if _, ok := s.(store.Notifier); !ok {
			t.Fatalf("the postgres store is no store.Notifier")
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestParseLocation(t *testing.T) {
	loc, err := postgres.ParseLocation("postgres://u:secret@db:5433/app?sslmode=disable&schema=jobs&pool_max_conns=7")
	if err != nil {
		t.Fatal(err)
	}
	if loc.Schema != "jobs" || !loc.MaxConnsSet || strings.Contains(loc.ConnString, "schema=") ||
		!strings.Contains(loc.ConnString, "pool_max_conns=7") || !strings.Contains(loc.ConnString, "sslmode=disable") {
		t.Fatalf("ParseLocation: %+v", loc)
	}
	loc, err = postgres.ParseLocation("postgresql://db/app")
	if err != nil || loc.Schema != postgres.DefaultSchema || loc.MaxConnsSet || loc.NoMigrate {
		t.Fatalf("ParseLocation without parameters: %+v, %v", loc, err)
	}
	loc, err = postgres.ParseLocation("postgres://db/app?migrate=false")
	if err != nil || !loc.NoMigrate || strings.Contains(loc.ConnString, "migrate") {
		t.Fatalf("ParseLocation with migrate=false: %+v, %v", loc, err)
	}
	for _, bad := range []string{"sqlite:/x.db", "postgres://db/app?schema=", "postgres://u:secret@db:bad/app", "postgres://u:secret@db/app?migrate=maybe"} {
		_, err := postgres.ParseLocation(bad)
		if err == nil {
			t.Fatalf("ParseLocation(%q): no error", bad)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("ParseLocation(%q): the error shows the password: %v", bad, err)
		}
	}
}

// TestMigrateOnceUnderConcurrency starts three Migrate calls on a new schema at once:
// one applies every migration, the others none; later calls and opens apply nothing.
func TestMigrateOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loc := location(t)
	const n = 3
	var wg sync.WaitGroup
	applied := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = postgres.Migrate(ctx, loc)
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Migrate %d: %v", i, errs[i])
		}
		if applied[i] != 0 && applied[i] != postgres.SchemaVersion() {
			t.Fatalf("Migrate %d applied %d migrations, want 0 or all %d", i, applied[i], postgres.SchemaVersion())
		}
		total += applied[i]
	}
	if total != postgres.SchemaVersion() {
		t.Fatalf("the concurrent Migrate calls applied %v migrations, want %d in all", applied, postgres.SchemaVersion())
	}
	if got, err := postgres.Migrate(ctx, loc); err != nil || got != 0 {
		t.Fatalf("Migrate again: %d, %v; want 0", got, err)
	}
	s, err := postgres.Open(ctx, loc+"&migrate=false")
	if err != nil {
		t.Fatalf("Open with migrate=false on a migrated schema: %v", err)
	}
	s.Close()
	if rows := queryInt(t, loc, `SELECT count(*) FROM schema_migrations`); rows != postgres.SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows, want %d", rows, postgres.SchemaVersion())
	}
}

// conn opens a connection whose search_path is the schema of loc, closed when the
// test ends.
func conn(t testing.TB, loc string) *pgx.Conn {
	t.Helper()
	l, err := postgres.ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(l.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{l.Schema}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(t testing.TB, loc, sql string, args ...any) {
	t.Helper()
	if _, err := conn(t, loc).Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryInt(t testing.TB, loc, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn(t, loc).QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loc := location(t)
	open(t, loc)
	next := postgres.SchemaVersion() + 3
	exec(t, loc, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')`, next)
	want := fmt.Sprintf("is at version %d, this fnhost (%s) knows up to %d: upgrade fnhost", next, fnhost.Version, postgres.SchemaVersion())
	_, err := postgres.Open(ctx, loc)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer schema: %v; want an error saying it %s", err, want)
	}
	if _, err := postgres.Migrate(ctx, loc); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Migrate of a newer schema: %v; want an error saying it %s", err, want)
	}
	if _, err := postgres.Open(ctx, loc+"&migrate=false"); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open with migrate=false of a newer schema: %v", err)
	}
}

func TestNoMigrateNeedsMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loc := location(t)
	_, err := postgres.Open(ctx, loc+"&migrate=false")
	if err == nil || !strings.Contains(err.Error(), "fnhost migrate") {
		t.Fatalf("Open with migrate=false of an empty schema: %v; want an error saying to run fnhost migrate", err)
	}
	if n, err := postgres.Migrate(ctx, loc); err != nil || n != postgres.SchemaVersion() {
		t.Fatalf("Migrate: %d, %v", n, err)
	}
	s, err := postgres.Open(ctx, loc+"&migrate=false")
	if err != nil {
		t.Fatalf("Open with migrate=false after Migrate: %v", err)
	}
	s.Close()
}

// stores opens n stores (instances) on one new schema.
func stores(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	loc := location(t)
	out := make([]*postgres.Store, n)
	for i := range out {
		out[i] = open(t, loc)
	}
	return out
}

// TestClaimAcrossInstances has 4 instances, each with several goroutines, claim 5000
// invocations of two functions: each is claimed exactly once.
func TestClaimAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ss := stores(t, 4)
	const n = 5000
	var invs []store.NewInvocation
	want := make(map[string]bool, n)
	for i := range n {
		inv := newInv([]string{"a", "b"}[i%2], t0.Add(time.Duration(i)*time.Microsecond))
		inv.Priority = i % 3
		invs = append(invs, inv)
		want[inv.ID] = true
	}
	for off := 0; off < n; off += 1000 {
		if _, err := ss[0].Enqueue(ctx, invs[off:off+1000]); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	var (
		mu    sync.Mutex
		count = map[string]int{}
		wg    sync.WaitGroup
		errs  = make(chan error, 64)
	)
	for i, s := range ss {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprintf("instance-%d-%d", i, g)
				var fns []string
				switch g % 3 {
				case 1:
					fns = []string{"a", "b"}
				case 2:
					fns = []string{[]string{"a", "b"}[i%2]}
				}
				for empty := 0; empty < 3; {
					now := t0.Add(time.Hour)
					got, err := s.Claim(ctx, store.ClaimRequest{Owner: owner, Now: now, LeaseUntil: now.Add(time.Hour),
						Limit: 1 + (i+g)%40, Functions: fns})
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						// A claim of one function finds nothing once that function is
						// done; the others may still have some.
						empty++
						if len(fns) == 1 {
							fns = nil
						}
						continue
					}
					mu.Lock()
					for _, inv := range got {
						count[inv.ID]++
						if inv.LeaseOwner != owner || inv.State != fnhost.StateRunning {
							errs <- fmt.Errorf("claimed %s: owner %q, state %s", inv.ID, inv.LeaseOwner, inv.State)
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(count) != n {
		t.Fatalf("claimed %d distinct invocations, want %d", len(count), n)
	}
	for id, c := range count {
		if c != 1 || !want[id] {
			t.Fatalf("invocation %s claimed %d times", id, c)
		}
	}
}

// race runs fn on each store at the same moment, n times per store, and returns the
// results.
func race[T any](ss []*postgres.Store, per int, fn func(s *postgres.Store, i int) (T, error)) ([]T, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		out   []T
		first error
	)
	start := make(chan struct{})
	for k, s := range ss {
		for j := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v, err := fn(s, k*per+j)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && first == nil {
					first = err
				}
				out = append(out, v)
			}()
		}
	}
	close(start)
	wg.Wait()
	return out, first
}

// TestEnqueueRaceAcrossInstances has several instances enqueue the same dedup key, the
// same receipt version, and the same id at the same moment, many rounds: each time
// exactly one invocation is stored and every caller is told its id.
func TestEnqueueRaceAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ss := stores(t, 4)
	const rounds = 20
	for round := range rounds {
		kinds := []struct {
			name string
			mk   func(i int) store.NewInvocation
		}{
			{"dedup key", func(i int) store.NewInvocation {
				inv := newInv("f", t0.Add(time.Duration(i)*time.Millisecond))
				inv.DedupKey = fmt.Sprintf("key-%d", round)
				return inv
			}},
			{"receipt", func(i int) store.NewInvocation {
				inv := newInv("g", t0.Add(time.Duration(i)*time.Millisecond))
				inv.ReceiptKey, inv.ReceiptVersion = fmt.Sprintf("obj-%d", round), "v1"
				return inv
			}},
			{"receipt and dedup key", func(i int) store.NewInvocation {
				inv := newInv("h", t0.Add(time.Duration(i)*time.Millisecond))
				inv.ReceiptKey, inv.ReceiptVersion = fmt.Sprintf("obj-%d", round), fmt.Sprintf("v%d", i%2)
				inv.DedupKey = fmt.Sprintf("key-%d", round)
				return inv
			}},
		}
		for _, kind := range kinds {
			res, err := race(ss, 3, func(s *postgres.Store, i int) (store.EnqueueResult, error) {
				inv := kind.mk(i)
				// Each call carries a continuation of it, which must be stored only
				// with it.
				child := newInv(inv.Function+"-then", inv.CreatedAt)
				child.Awaiting, child.ParentID, child.Continuation = true, inv.ID, fnhost.ContinueThen
				r, err := s.Enqueue(ctx, []store.NewInvocation{inv, child})
				if err != nil {
					return store.EnqueueResult{}, err
				}
				if r[0].Duplicate != r[1].Duplicate {
					return store.EnqueueResult{}, fmt.Errorf("parent %+v, child %+v: one stored without the other", r[0], r[1])
				}
				return r[0], nil
			})
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, kind.name, err)
			}
			stored := 0
			ids := map[string]bool{}
			for _, r := range res {
				if !r.Duplicate {
					stored++
				}
				ids[r.ID] = true
			}
			if stored != 1 || len(ids) != 1 {
				t.Fatalf("round %d, %s: %d of %d racing enqueues stored, %d ids returned (%v); want exactly 1 and 1",
					round, kind.name, stored, len(res), len(ids), res)
			}
		}
	}
	// Every stored invocation has its continuation, and nothing else was stored.
	st, err := ss[0].Stats(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Per round: one invocation of each of f, g and h (receipts and dedup keys are per
	// function).
	if st.ByState[fnhost.StatePending] != 3*rounds || st.ByState[fnhost.StateAwaiting] != 3*rounds {
		t.Fatalf("stored %d pending and %d awaiting, want %d each", st.ByState[fnhost.StatePending], st.ByState[fnhost.StateAwaiting], 3*rounds)
	}

	// The same id from every instance at once.
	inv := newInv("same", t0)
	res, err := race(ss, 4, func(s *postgres.Store, _ int) (store.EnqueueResult, error) {
		r, err := s.Enqueue(ctx, []store.NewInvocation{inv})
		if err != nil {
			return store.EnqueueResult{}, err
		}
		return r[0], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, r := range res {
		if r.ID != inv.ID {
			t.Fatalf("result %+v, want the id %s", r, inv.ID)
		}
		if !r.Duplicate {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d of %d enqueues of one id stored it", stored, len(res))
	}
}

// TestCompareAndPutAcrossInstances races instances on a state key: exactly one wins
// each round.
func TestCompareAndPutAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ss := stores(t, 4)
	var cur []byte
	for round := range 20 {
		wins, err := race(ss, 4, func(s *postgres.Store, i int) ([]byte, error) {
			v := fmt.Appendf(nil, "round %d instance %d", round, i)
			ok, err := s.CompareAndPutState(ctx, "leader", cur, v)
			if err != nil || !ok {
				return nil, err
			}
			return v, nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var won [][]byte
		for _, w := range wins {
			if w != nil {
				won = append(won, w)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d winners, want 1", round, len(won))
		}
		got, err := ss[round%4].GetState(ctx, "leader")
		if err != nil || string(got) != string(won[0]) {
			t.Fatalf("round %d: stored %q (%v), want the winner's %q", round, got, err, won[0])
		}
		cur = won[0]
	}
}

// waitNotify waits for a notification on ch while poke keeps making work ready, and
// fails the test after a minute.
func waitNotify(t *testing.T, ch <-chan struct{}, what string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		poke()
		select {
		case <-ch:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("no notification %s within a minute", what)
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestNotifyAcrossInstances checks that an instance hears about work another made
// ready, and that its listener comes back after its connection is killed.
func TestNotifyAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ss := stores(t, 2)
	a, b := ss[0], ss[1]
	ch := b.Notify()
	n := 0
	enqueue := func() {
		n++
		if _, err := a.Enqueue(ctx, []store.NewInvocation{newInv("f", t0.Add(time.Duration(n)*time.Millisecond))}); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	waitNotify(t, ch, "of an enqueue on another instance", enqueue)

	// Kill the listening connection: it comes back, and hears again.
	admin := conn(t, database(t))
	listening := func(kill bool) int {
		n := 0
		q := `SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND query = $1`
		if kill {
			q = `SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity
				WHERE datname = current_database() AND query = $1`
		}
		if err := admin.QueryRow(ctx, q, "LISTEN "+pgx.Identifier{b.Channel()}.Sanitize()).Scan(&n); err != nil {
			t.Fatalf("find the listener: %v", err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after a minute", what)
			}
		}
	}
	waitFor("the listener to listen", func() bool { return listening(false) == 1 })
	drain(ch)
	if killed := listening(true); killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	// The listener wakes once it is back (it may have missed notifications), then
	// hears the enqueues again.
	waitNotify(t, ch, "after the listener's connection was killed", func() {})
	waitFor("the listener to listen again", func() bool { return listening(false) == 1 })
	drain(ch)
	waitNotify(t, ch, "of an enqueue after the listener came back", enqueue)

	// Work made ready in other ways notifies too: a retry.
	inv := newInv("r", t0)
	inv.Owner, inv.LeaseUntil = "x", t0.Add(time.Minute)
	inv.Completion = &store.Completion{State: fnhost.StateFailed, Attempt: fnhost.Attempt{FinishedAt: t0.Add(time.Second)}}
	if _, err := a.Enqueue(ctx, []store.NewInvocation{inv}); err != nil {
		t.Fatal(err)
	}
	drain(ch)
	retried := false
	waitNotify(t, ch, "of a retry on another instance", func() {
		if !retried {
			if _, err := a.Retry(ctx, inv.ID, t0.Add(time.Minute), 1); err != nil {
				t.Fatalf("Retry: %v", err)
			}
			retried = true
		}
	})
}
