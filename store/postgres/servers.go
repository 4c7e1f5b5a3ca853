package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fnhost/fnhost/store"
)

// ServerHeartbeat registers or updates the instance srv.
func (s *Store) ServerHeartbeat(ctx context.Context, srv store.Server) error {
	err := retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO servers (id, hostname, pid, version, workers, in_flight, started_at, heartbeat_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
				workers = EXCLUDED.workers, in_flight = EXCLUDED.in_flight, started_at = EXCLUDED.started_at,
				heartbeat_at = EXCLUDED.heartbeat_at`,
			srv.ID, srv.Hostname, srv.PID, srv.Version, srv.Workers, srv.InFlight, srv.StartedAt, srv.HeartbeatAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("server heartbeat %s: %w", srv.ID, err)
	}
	return nil
}

// Servers lists the instances whose heartbeat is at or after since, by id.
func (s *Store) Servers(ctx context.Context, since time.Time) ([]store.Server, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, hostname, pid, version, workers, in_flight, started_at, heartbeat_at
		FROM servers WHERE heartbeat_at >= $1 ORDER BY id`, since)
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	out := []store.Server{}
	var (
		srv                  store.Server
		pid, workers, flight int32
		started, heartbeatAt time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&srv.ID, &srv.Hostname, &pid, &srv.Version, &workers, &flight, &started, &heartbeatAt}, func() error {
		srv.PID, srv.Workers, srv.InFlight = int(pid), int(workers), int(flight)
		srv.StartedAt, srv.HeartbeatAt = started.UTC(), heartbeatAt.UTC()
		out = append(out, srv)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	return out, nil
}

// RemoveServer unregisters one instance.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM servers WHERE id = $1`, id); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// PruneServers unregisters the instances silent since before.
func (s *Store) PruneServers(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM servers WHERE heartbeat_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune servers: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
