package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/fnhost/fnhost/store"
)

// The instances registered in the store.

func server(id string, beat time.Time) store.Server {
	return store.Server{ID: id, Hostname: "host-" + id, PID: 4242, Version: "v1.2.3", Workers: 8, InFlight: 2,
		StartedAt: at(0), HeartbeatAt: beat}
}

func (b *bundle) servers(since time.Time) []store.Server {
	b.t.Helper()
	got, err := b.s.Servers(b.ctx, since)
	if err != nil {
		b.t.Fatalf("Servers: %v", err)
	}
	return got
}

func (b *bundle) beat(s store.Server) {
	b.t.Helper()
	if err := b.s.ServerHeartbeat(b.ctx, s); err != nil {
		b.t.Fatalf("ServerHeartbeat(%s): %v", s.ID, err)
	}
}

func serverIDs(ss []store.Server) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func testServers(t *testing.T, b *bundle) {
	if got := b.servers(time.Time{}); len(got) != 0 {
		t.Fatalf("an empty store lists servers %v", got)
	}
	b.beat(server("b", at(time.Second)))
	b.beat(server("a", at(time.Second)))
	b.beat(server("c", at(time.Second)))

	// A heartbeat updates every field but the id.
	upd := server("b", at(5*time.Second))
	upd.InFlight, upd.Workers, upd.Version = 7, 16, "v2"
	b.beat(upd)
	got := b.servers(time.Time{})
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(serverIDs(got), want) {
		t.Fatalf("servers %v, want %v in id order", serverIDs(got), want)
	}
	g := got[1]
	if !sameTime(g.HeartbeatAt, upd.HeartbeatAt) || !sameTime(g.StartedAt, upd.StartedAt) || g.InFlight != 7 || g.Workers != 16 ||
		g.Version != "v2" || g.Hostname != "host-b" || g.PID != 4242 {
		t.Errorf("server b = %+v, want %+v", g, upd)
	}

	// since filters by heartbeat, inclusively.
	if got := serverIDs(b.servers(at(5 * time.Second))); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("Servers(since the last heartbeat of b) = %v, want [b]", got)
	}

	if err := b.s.RemoveServer(b.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.s.RemoveServer(b.ctx, "unknown"); err != nil {
		t.Errorf("RemoveServer(unknown) = %v, want nil", err)
	}
	if got := serverIDs(b.servers(time.Time{})); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("after RemoveServer(a): %v", got)
	}
	n, err := b.s.PruneServers(b.ctx, at(2*time.Second))
	if err != nil || n != 1 {
		t.Errorf("PruneServers = %d, %v; want 1 (c), nil", n, err)
	}
	if got := serverIDs(b.servers(time.Time{})); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("after PruneServers: %v", got)
	}
}
