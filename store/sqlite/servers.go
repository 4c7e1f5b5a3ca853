package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/fnhost/fnhost/store"
)

// ServerHeartbeat registers or updates the instance s.
func (s *Store) ServerHeartbeat(ctx context.Context, srv store.Server) error {
	err := s.do(ctx, 1, func(w *writer) error {
		_, err := w.exec(`INSERT INTO servers (id, hostname, pid, version, workers, in_flight, started_at, heartbeat_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
			ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid, version = excluded.version,
				workers = excluded.workers, in_flight = excluded.in_flight, started_at = excluded.started_at,
				heartbeat_at = excluded.heartbeat_at`,
			srv.ID, srv.Hostname, srv.PID, srv.Version, srv.Workers, srv.InFlight, micros(srv.StartedAt), micros(srv.HeartbeatAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("server heartbeat %s: %w", srv.ID, err)
	}
	return nil
}

// Servers lists the instances whose heartbeat is at or after since.
func (s *Store) Servers(ctx context.Context, since time.Time) ([]store.Server, error) {
	st, err := s.rstmt(ctx, `SELECT id, hostname, pid, version, workers, in_flight, started_at, heartbeat_at
		FROM servers WHERE heartbeat_at >= ?1 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	rs, err := st.QueryContext(ctx, micros(since))
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	defer rs.Close()
	out := []store.Server{}
	for rs.Next() {
		var srv store.Server
		var started, beat int64
		if err := rs.Scan(&srv.ID, &srv.Hostname, &srv.PID, &srv.Version, &srv.Workers, &srv.InFlight, &started, &beat); err != nil {
			return nil, fmt.Errorf("servers: %w", err)
		}
		srv.StartedAt, srv.HeartbeatAt = fromMicros(started), fromMicros(beat)
		out = append(out, srv)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	return out, nil
}

// RemoveServer unregisters one instance.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	err := s.do(ctx, 1, func(w *writer) error {
		_, err := w.exec(`DELETE FROM servers WHERE id = ?1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// PruneServers unregisters the instances silent since before.
func (s *Store) PruneServers(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.do(ctx, 1, func(w *writer) error {
		r, err := w.exec(`DELETE FROM servers WHERE heartbeat_at < ?1`, micros(before))
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune servers: %w", err)
	}
	return int(n), nil
}
