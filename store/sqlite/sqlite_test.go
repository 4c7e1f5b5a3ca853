package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost"

	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/store/storetest"
)

func openTemp(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), sqlite.Options{})
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
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newInv(fn string, created time.Time) store.NewInvocation {
	return store.NewInvocation{ID: fnhost.NewIDAt(created), Function: fn, Trigger: "queue",
		Event: json.RawMessage(`{"specversion":"1.0"}`), MaxAttempts: 3, CreatedAt: created}
}

func TestSecondOpenIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fnhost.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	_, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "is in use by another fnhost process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v; want an error saying %s is in use by another fnhost process", err, path)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestReopenRescuesRunningAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fnhost.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	a, b, c := newInv("f", t0), newInv("f", t0.Add(time.Millisecond)), newInv("f", t0.Add(2*time.Millisecond))
	if _, err := s.Enqueue(ctx, []store.NewInvocation{a, b, c}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	// Claimed with a lease far in the future; the process then "crashes" (closes
	// without completing or releasing).
	claimed, err := s.Claim(ctx, store.ClaimRequest{Owner: "old-host", Now: t0.Add(time.Second), LeaseUntil: t0.Add(time.Hour), Limit: 2})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("Claim: %d, %v", len(claimed), err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	n, err := s.Rescue(ctx, t0.Add(2*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("Rescue right after reopen: %d, %v; want 2", n, err)
	}
	for _, id := range []string{a.ID, b.ID} {
		inv, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if inv.State != fnhost.StatePending || len(inv.Attempts) != 1 || inv.Attempts[0].Outcome != fnhost.OutcomeLost {
			t.Fatalf("%s after rescue: state %s, attempts %+v; want pending with one lost attempt", id, inv.State, inv.Attempts)
		}
		if inv.Attempts[0].Owner != "old-host" || !inv.Attempts[0].StartedAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("lost attempt %+v: want owner old-host, started at the claim", inv.Attempts[0])
		}
	}
	inv, err := s.Get(ctx, c.ID)
	if err != nil || inv.State != fnhost.StatePending || len(inv.Attempts) != 0 {
		t.Fatalf("unclaimed invocation after reopen: %+v, %v", inv, err)
	}
	got, err := s.Claim(ctx, store.ClaimRequest{Owner: "new-host", Now: t0.Add(3 * time.Second), LeaseUntil: t0.Add(time.Hour), Limit: 10})
	if err != nil || len(got) != 3 {
		t.Fatalf("Claim after rescue: %d, %v; want 3", len(got), err)
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", "dir")
	path := filepath.Join(dir, "fnhost.db")

	// Fresh: the parent directory is created and the schema is the latest.
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open of a fresh database: %v", err)
	}
	inv := newInv("f", t0)
	if _, err := s.Enqueue(ctx, []store.NewInvocation{inv}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v := schemaVersion(t, path); v != sqlite.SchemaVersion() || v < 1 {
		t.Fatalf("schema version %d, want %d", v, sqlite.SchemaVersion())
	}

	// Existing: reopening keeps the data and the version.
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if got, err := s.Get(ctx, inv.ID); err != nil || got.Function != "f" {
		t.Fatalf("Get after reopen: %+v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v := schemaVersion(t, path); v != sqlite.SchemaVersion() {
		t.Fatalf("schema version after reopen %d, want %d", v, sqlite.SchemaVersion())
	}

	// Newer than this build: a clear error, and the database is left alone.
	execRaw(t, path, `UPDATE schema_version SET version = version + 1`)
	_, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "upgrade fnhost") {
		t.Fatalf("Open of a newer schema: %v; want an error asking to upgrade fnhost", err)
	}
	if v := schemaVersion(t, path); v != sqlite.SchemaVersion()+1 {
		t.Fatalf("schema version after refused open %d, want %d", v, sqlite.SchemaVersion()+1)
	}
	// The refused Open released its lock.
	execRaw(t, path, `UPDATE schema_version SET version = version - 1`)
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open after a refused open: %v", err)
	}
	_ = s.Close()
}

func TestOpenByLocation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db", "fnhost.db")
	s, err := store.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	if st, ok := s.(*sqlite.Store); !ok || st.Path() != path {
		t.Fatalf("store.Open returned %T", s)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for loc, want := range map[string]string{
		"sqlite:.fnhost/fnhost.db": ".fnhost/fnhost.db",
		"sqlite:///var/lib/f.db":   "/var/lib/f.db",
		"sqlite:/var/lib/f.db":     "/var/lib/f.db",
	} {
		got, err := sqlite.ParseLocation(loc)
		if err != nil || got != want {
			t.Errorf("ParseLocation(%q) = %q, %v; want %q", loc, got, err, want)
		}
	}
	for _, loc := range []string{"sqlite:", "postgres://x/y", "sqlite://"} {
		if _, err := sqlite.ParseLocation(loc); err == nil {
			t.Errorf("ParseLocation(%q): no error", loc)
		}
	}
	if _, err := sqlite.Open(context.Background(), "file:x.db?mode=memory", sqlite.Options{}); err == nil {
		t.Errorf("Open of a URI: no error")
	}
	if _, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "SOMETIMES"}); err == nil {
		t.Errorf("Open with a bad synchronous: no error")
	}
}

// TestGroupCommit has many goroutines write at once, some of them failing, some with
// contexts that end while they wait: every successful call is durable, the failing ones
// change nothing, and the writer keeps going.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fnhost.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{MaxBatch: 50})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	const n = 400
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok       []string
		conflict int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv := newInv("f", t0.Add(time.Duration(i)*time.Millisecond))
			switch i % 4 {
			case 0: // a failing request: Cancel of an unknown id
				_, err := s.Cancel(ctx, inv.ID, t0)
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Cancel of an unknown id: %v", err)
				}
			case 1: // a failing request after a write inside the same request
				bad := inv
				bad.Event = json.RawMessage(`{`)
				if _, err := s.Enqueue(ctx, []store.NewInvocation{newInv("g", t0), bad}); err == nil {
					t.Errorf("Enqueue of bad JSON: no error")
				}
			case 2: // a caller that gives up at once
				cctx, cancel := context.WithTimeout(ctx, time.Microsecond)
				_, _ = s.Enqueue(cctx, []store.NewInvocation{newInv("h", t0)})
				cancel()
			default:
				if _, err := s.Enqueue(ctx, []store.NewInvocation{inv}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				// A duplicate of the same id in another request also conflicts.
				res, err := s.Enqueue(ctx, []store.NewInvocation{inv})
				if err != nil || !res[0].Duplicate {
					t.Errorf("second Enqueue: %+v, %v", res, err)
				}
				mu.Lock()
				ok = append(ok, inv.ID)
				conflict++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	for _, id := range ok {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("Get(%s) after reopen: %v", id, err)
		}
	}
	for _, fn := range []string{"f", "g"} {
		p, err := s.List(ctx, store.Filter{Function: fn, Limit: 1000})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		want := map[string]int{"f": len(ok), "g": 0}[fn]
		if len(p.Items) != want {
			t.Fatalf("%d invocations of %s, want %d", len(p.Items), fn, want)
		}
	}
	if conflict != n/4 {
		t.Fatalf("%d successful writers, want %d", conflict, n/4)
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = s.Enqueue(context.Background(), []store.NewInvocation{newInv("f", t0)})
	if !errors.Is(err, sqlite.ErrClosed) {
		t.Fatalf("Enqueue after Close: %v, want ErrClosed", err)
	}
}

// TestPruneInChunks prunes more rows than one chunk holds.
func TestPruneInChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fnhost.db"), sqlite.Options{PruneChunk: 7})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	var invs []store.NewInvocation
	for i := range 30 {
		invs = append(invs, newInv("f", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if _, err := s.Enqueue(ctx, invs); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	claimed, err := s.Claim(ctx, store.ClaimRequest{Owner: "w", Now: t0, LeaseUntil: t0.Add(time.Hour), Limit: 30})
	if err != nil || len(claimed) != 30 {
		t.Fatalf("Claim: %d, %v", len(claimed), err)
	}
	var cs []store.Completion
	for i, inv := range claimed {
		cs = append(cs, store.Completion{ID: inv.ID, Owner: "w", State: fnhost.StateSucceeded,
			Attempt: fnhost.Attempt{StartedAt: t0, FinishedAt: t0.Add(time.Duration(i) * time.Second)}})
	}
	if dropped, err := s.Complete(ctx, cs); err != nil || len(dropped) != 0 {
		t.Fatalf("Complete: %v, %v", dropped, err)
	}
	n, err := s.Prune(ctx, t0.Add(25*time.Second))
	if err != nil || n != 25 {
		t.Fatalf("Prune: %d, %v; want 25", n, err)
	}
	st, err := s.Stats(ctx, t0)
	if err != nil || st.ByState[fnhost.StateSucceeded] != 5 {
		t.Fatalf("Stats after prune: %+v, %v; want 5 succeeded", st, err)
	}
}

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

func execRaw(t *testing.T, path, query string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
