package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store/internal/migrations"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// embedded returns the embedded migrations in order.
func embedded() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// SchemaVersion is the schema version this build of fnhost creates and understands.
func SchemaVersion() int {
	ms, err := embedded()
	if err != nil {
		return 0
	}
	return migrations.Latest(ms)
}

// migrate brings the schema to the latest embedded version, one transaction per
// migration, and returns how many it applied. A database with a newer schema than this
// binary knows is an error.
func migrate(ctx context.Context, conn *sql.Conn) (int, error) {
	ms, err := embedded()
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	latest := len(ms)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	var cur int
	err = conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur)
	if err != nil {
		return 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	if cur > latest {
		return 0, fmt.Errorf("migrate: the database has schema version %d, newer than the %d this fnhost %s knows: upgrade fnhost", cur, latest, fnhost.Version)
	}
	for _, m := range ms[cur:] {
		if err := apply(ctx, conn, m); err != nil {
			return 0, fmt.Errorf("migrate to version %d (%s): %w", m.Version, m.Name, err)
		}
	}
	return latest - cur, nil
}

func apply(ctx context.Context, conn *sql.Conn, m migrations.Migration) (err error) {
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, rerr := conn.ExecContext(context.Background(), `ROLLBACK`)
			err = errors.Join(err, rerr)
		}
	}()
	if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, m.Version); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `COMMIT`)
	return err
}
