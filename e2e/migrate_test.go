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
// clear error for both, and the host does not start on it.
func TestMigrateCLI(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.CreateDB(t, "migrate") + "&schema=jobs"
	p := newProject(t, strings.ReplaceAll(clusterManifest, "{{STORAGE}}", url), nil)

	out, err := p.cli("migrate")
	if err != nil || !strings.Contains(out, "migration(s) applied, schema at version") || strings.Contains(out, " 0 migration(s)") {
		t.Fatalf("fnhost migrate on a new schema: %v\n%s", err, out)
	}
	out, err = p.cli("migrate", "--storage", url)
	if err != nil || !strings.Contains(out, ": 0 migration(s) applied") {
		t.Fatalf("fnhost migrate again: %v\n%s", err, out)
	}
	p.start()
	p.stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pg.Exec(ctx, "migrate", `INSERT INTO jobs.schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	out, err = p.cli("migrate")
	if err == nil || !strings.Contains(out, "is at version 999") || !strings.Contains(out, "upgrade fnhost") {
		t.Fatalf("fnhost migrate on a newer schema: %v\n%s", err, out)
	}
	if strings.Contains(out, "postgres@") && strings.Contains(out, "password") {
		t.Errorf("the error shows the storage URL's credentials:\n%s", out)
	}
	cmd := exec.Command(binary, "run")
	cmd.Dir = p.dir
	run, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(run), "upgrade fnhost") {
		t.Fatalf("fnhost run on a newer schema: %v\n%s", err, run)
	}
}
