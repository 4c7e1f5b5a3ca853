package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// queryPlan returns the lines of EXPLAIN QUERY PLAN of query on db, with args bound.
func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rs, err := db.Query(`EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v\n%s", err, query)
	}
	defer rs.Close()
	var lines []string
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestClaimPlan checks that every arm of a claim seeks invocations_claim by function,
// that the arms are merged in claim order without a sort, and that no query of the
// claim or of Stats scans the table.
func TestClaimPlan(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fnhost.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Some rows, so that the planner has a table to choose in.
	var invs []store.NewInvocation
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range 200 {
		created := now.Add(time.Duration(i) * time.Millisecond)
		invs = append(invs, store.NewInvocation{ID: fnhost.NewIDAt(created), Function: fmt.Sprintf("f%d", i%3),
			MaxAttempts: 1, CreatedAt: created, Priority: i % 2})
	}
	if _, err := s.Enqueue(ctx, invs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}

	for _, n := range []int{1, 2, 4, 8, maxClaimArms} {
		args := []any{"w", int64(1), int64(2), 10}
		for i := range n {
			args = append(args, fmt.Sprintf("f%d", i))
		}
		for name, query := range map[string]string{"claim": claimSQL.get(n), "candidates": claimCandidatesSQL.get(n)} {
			plan := queryPlan(t, db, query, args...)
			text := strings.Join(plan, "\n")
			seeks := 0
			for _, line := range plan {
				if strings.Contains(line, "SEARCH invocations USING COVERING INDEX invocations_claim (function=?)") {
					seeks++
				}
				if strings.HasPrefix(line, "SCAN invocations") || strings.Contains(line, "TEMP B-TREE") {
					t.Errorf("%s of %d functions: %q in the plan:\n%s", name, n, line, text)
				}
			}
			if seeks != n {
				t.Errorf("%s of %d functions: %d seeks of invocations_claim by function, want %d:\n%s", name, n, seeks, n, text)
			}
			if n > 1 && !strings.Contains(text, "MERGE (UNION ALL)") {
				t.Errorf("%s of %d functions: the arms are not merged:\n%s", name, n, text)
			}
		}
	}

	plan := strings.Join(queryPlan(t, db, readyFunctionsSQL), "\n")
	if !strings.Contains(plan, "SEARCH invocations USING COVERING INDEX invocations_claim (function>?)") {
		t.Errorf("ready functions do not seek invocations_claim:\n%s", plan)
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM invocations INDEXED BY invocations_claim WHERE state IN ('pending', 'scheduled') AND state = 'pending'`,
		`SELECT COUNT(*) FROM invocations INDEXED BY invocations_claim WHERE state IN ('pending', 'scheduled') AND (state = 'pending' OR run_at <= 1)`,
	} {
		plan := strings.Join(queryPlan(t, db, q), "\n")
		if !strings.Contains(plan, "COVERING INDEX invocations_claim") {
			t.Errorf("%s: not covered by invocations_claim:\n%s", q, plan)
		}
	}
}

// TestClaimManyFunctions claims for more functions than one statement takes: the rows
// still come in claim order across all of them, and Exclude still applies.
func TestClaimManyFunctions(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	const k = maxClaimArms*2 + 10
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var (
		invs []store.NewInvocation
		fns  []string
	)
	for i := range k {
		fn := fmt.Sprintf("f%03d", i)
		fns = append(fns, fn)
		// Two rows per function; the priority grows with i, so the last functions come first.
		for j := range 2 {
			created := base.Add(time.Duration(j) * time.Second)
			invs = append(invs, store.NewInvocation{ID: fnhost.NewIDAt(created), Function: fn,
				MaxAttempts: 1, CreatedAt: created, Priority: i})
		}
	}
	if _, err := s.Enqueue(ctx, invs); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Minute)
	req := store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 5, Functions: fns,
		Exclude: []string{fns[k-2]}}
	got, err := s.Claim(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, inv := range got {
		order = append(order, fmt.Sprintf("%s@%s", inv.Function, inv.RunAt.Sub(base)))
	}
	want := fmt.Sprintf("[%[1]s@0s %[1]s@1s %[2]s@0s %[2]s@1s %[3]s@0s]", fns[k-1], fns[k-3], fns[k-4])
	if fmt.Sprint(order) != want {
		t.Fatalf("claimed %v, want %s", order, want)
	}
	// Every function, with no Functions: the same order, from the ready functions.
	got, err = s.Claim(ctx, store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 3,
		Exclude: []string{fns[k-2]}})
	if err != nil {
		t.Fatal(err)
	}
	order = order[:0]
	for _, inv := range got {
		order = append(order, fmt.Sprintf("%s@%s", inv.Function, inv.RunAt.Sub(base)))
	}
	want = fmt.Sprintf("[%[1]s@1s %[2]s@0s %[2]s@1s]", fns[k-4], fns[k-5])
	if fmt.Sprint(order) != want {
		t.Fatalf("claimed %v, want %s", order, want)
	}
}

// TestMigrateToClaimIndex opens a database of schema 2 with ready rows: the migration
// builds invocations_claim from them, drops invocations_ready, and the rows are claimed
// in order.
func TestMigrateToClaimIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fnhost.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if err := apply(ctx, conn, m); err != nil {
			t.Fatalf("apply %s: %v", m.Name, err)
		}
	}
	for i, fn := range []string{"a", "b", "a", "c"} {
		if _, err := conn.ExecContext(ctx, `INSERT INTO invocations (id, function, state, max_attempts, priority, run_at, created_at)
			VALUES (?, ?, 'pending', 1, ?, ?, ?)`, fmt.Sprintf("id-%d", i), fn, i%2, i, i); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.Close()
	_ = db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Open of schema 2: %v", err)
	}
	defer s.Close()
	var names []string
	rs, err := s.rdb.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'invocations_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	_ = rs.Close()
	got := strings.Join(names, " ")
	if !strings.Contains(got, "invocations_claim") || strings.Contains(got, "invocations_ready") {
		t.Fatalf("indexes after the migration: %s", got)
	}
	now := time.UnixMicro(10)
	invs, err := s.Claim(ctx, store.ClaimRequest{Owner: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10,
		Functions: []string{"a", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, inv := range invs {
		order = append(order, inv.ID)
	}
	if fmt.Sprint(order) != "[id-3 id-0 id-2]" {
		t.Fatalf("claimed %v, want [id-3 id-0 id-2]", order)
	}
}
