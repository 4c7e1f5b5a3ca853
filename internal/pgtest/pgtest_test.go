package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func query(t *testing.T, url, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(context.Background())
	var out string
	if err := conn.QueryRow(ctx, sql).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestShared(t *testing.T) {
	s := pgtest.Shared(t)
	if got := query(t, s.URL("postgres"), "SHOW fsync"); got != "on" {
		t.Fatalf("fsync %q, want on", got)
	}
	if got := query(t, s.URL("postgres"), "SELECT current_user"); got != pgtest.User {
		t.Fatalf("user %q, want %s", got, pgtest.User)
	}
	url := s.CreateDB(t, "pgtest_shared")
	if got := query(t, url, "SELECT current_database()"); got != "pgtest_shared" {
		t.Fatalf("database %q", got)
	}
	if again := pgtest.Shared(t); again != s {
		t.Fatalf("Shared started a second server")
	}
}

func TestStopStartKill(t *testing.T) {
	s := pgtest.Start(t)
	url := s.CreateDB(t, "kept")
	ctx := context.Background()
	if err := s.Exec(ctx, "kept", "CREATE TABLE t (v text); INSERT INTO t VALUES ('x')"); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	s.Stop()
	if s.Running() {
		t.Fatalf("running after Stop")
	}
	if err := s.Exec(ctx, "kept", "SELECT 1"); err == nil {
		t.Fatalf("a stopped server answers")
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := query(t, url, "SELECT v FROM t"); got != "x" {
		t.Fatalf("after restart: %q", got)
	}
	s.Kill()
	if err := s.Start(); err != nil {
		t.Fatalf("Start after Kill: %v", err)
	}
	if got := query(t, url, "SELECT v FROM t"); got != "x" {
		t.Fatalf("after a kill and a start: %q", got)
	}
}
