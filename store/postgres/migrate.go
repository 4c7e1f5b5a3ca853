package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// Migrate brings the schema of the store at location to the version this fnhost knows
// and returns how many migrations it applied. Instances that migrate at the same time
// take turns (an advisory lock of the schema): one applies each migration, the others
// find it applied. A schema newer than this fnhost knows is an error.
func Migrate(ctx context.Context, location string) (applied int, err error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return 0, err
	}
	cfg, err := poolConfig(loc)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return migrate(ctx, cfg.ConnConfig, loc.Schema)
}

// lockKey is the advisory lock that migrations of schema hold.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("fnhost migrations of schema " + schema))
	return int64(h.Sum64())
}

// newerError is the error of a schema newer than this fnhost.
func newerError(schema string, cur, latest int) error {
	return fmt.Errorf("schema %s is at version %d, this fnhost (%s) knows up to %d: upgrade fnhost", schema, cur, fnhost.Version, latest)
}

// version reads the schema's version: 0 when it has no migrations table.
func version(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: dropped in between
		return 0, nil
	}
	return v, err
}

// checkVersion fails unless the schema is at the version this fnhost knows.
func checkVersion(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	cur, err := version(ctx, conn)
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	latest := SchemaVersion()
	switch {
	case cur > latest:
		return newerError(schema, cur, latest)
	case cur < latest:
		return fmt.Errorf("schema %s is at version %d, this fnhost needs %d: run `fnhost migrate` first", schema, cur, latest)
	}
	return nil
}

// migrate applies the migrations schema lacks, one transaction each, under the
// schema's advisory lock, on a connection of its own.
func migrate(ctx context.Context, cfg *pgx.ConnConfig, schema string) (int, error) {
	ms, err := embedded()
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	latest := len(ms)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close(context.Background())

	// Most opens find the schema up to date, and need no lock for that.
	cur, err := version(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("migrate: read the schema version: %w", err)
	}
	if cur > latest {
		return 0, fmt.Errorf("migrate: %w", newerError(schema, cur, latest))
	}
	if cur == latest {
		return 0, nil
	}

	key := lockKey(schema)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key) }()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return 0, fmt.Errorf("migrate: create schema %s: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     NOT NULL PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	// Another instance may have migrated while this one waited for the lock.
	if cur, err = version(ctx, conn); err != nil {
		return 0, fmt.Errorf("migrate: read the schema version: %w", err)
	}
	if cur > latest {
		return 0, fmt.Errorf("migrate: %w", newerError(schema, cur, latest))
	}
	applied := 0
	for _, m := range ms[cur:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate schema %s to version %d (%s): %w", schema, m.Version, m.Name, err)
		}
		applied++
	}
	return applied, nil
}
