package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost/internal/pgtest"
)

// TestMigrateCLI: fnhost migrate brings a new PostgreSQL schema to this version, and
// then finds nothing to do; a host starts on it; a schema newer than the binary is a
// clear error for both, that shows no password, and the host does not start on it.
// --storage reads a location as host.storage does.
func TestMigrateCLI(t *testing.T) {
	pg := pgtest.Shared(t)
	// The server trusts local connections: the password is there to be hidden.
	url := strings.Replace(pg.CreateDB(t, "migrate"), "postgres@", "postgres:s3cr3t-pw@", 1) + "&schema=jobs"
	p := newProject(t, strings.ReplaceAll(clusterManifest, "{{STORAGE}}", url), nil)

	out, err := p.cli("migrate")
	if err != nil || !strings.Contains(out, "migration(s) applied, schema at version") || strings.Contains(out, " 0 migration(s)") {
		t.Fatalf("fnhost migrate on a new schema: %v\n%s", err, out)
	}
	// The scheme in capitals, as the manifest accepts it.
	out, err = p.cli("migrate", "--storage", strings.Replace(url, "postgres://", "POSTGRES://", 1))
	if err != nil || !strings.Contains(out, ": 0 migration(s) applied") {
		t.Fatalf("fnhost migrate again: %v\n%s", err, out)
	}
	if strings.Contains(out, "s3cr3t-pw") {
		t.Errorf("fnhost migrate shows the password:\n%s", out)
	}
	p.start()
	p.stop()

	// An SQLite database by a path relative to the working directory.
	out, err = p.cli("migrate", "--storage", "local/fnhost.db")
	if err != nil || !strings.Contains(out, "local/fnhost.db: ") || strings.Contains(out, " 0 migration(s)") {
		t.Fatalf("fnhost migrate --storage PATH: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pg.Exec(ctx, "migrate", `INSERT INTO jobs.schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	out, err = p.cli("migrate")
	if err == nil || !strings.Contains(out, "is at version 999") || !strings.Contains(out, "upgrade fnhost") {
		t.Fatalf("fnhost migrate on a newer schema: %v\n%s", err, out)
	}
	if strings.Contains(out, "s3cr3t-pw") {
		t.Errorf("the error shows the password:\n%s", out)
	}
	cmd := exec.CommandContext(ctx, binary, "run")
	cmd.Dir = p.dir
	run, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(run), "upgrade fnhost") {
		t.Fatalf("fnhost run on a newer schema: %v\n%s", err, run)
	}
	if strings.Contains(string(run), "s3cr3t-pw") {
		t.Errorf("fnhost run shows the password:\n%s", run)
	}
}
