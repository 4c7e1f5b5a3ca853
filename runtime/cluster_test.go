package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store/sqlite"
)

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLeaderAndServers: hosts sharing a store register in its servers table; exactly
// one leads maintenance; when the leader stops, another takes over and the stopped
// host leaves the table.
func TestLeaderAndServers(t *testing.T) {
	st := runtimetest.OpenStore(t, sqlite.Options{})
	lease := 300 * time.Millisecond
	var rts []*runtime.Runtime
	for _, owner := range []string{"host-a", "host-b", "host-c"} {
		rt, err := runtime.New(runtime.Config{Store: st, Owner: owner, Lease: lease, PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		rts = append(rts, rt)
	}
	stopped := map[int]bool{}
	t.Cleanup(func() {
		for i, rt := range rts {
			if !stopped[i] {
				_ = rt.Stop(context.Background())
			}
		}
	})
	leaders := func() []int {
		var out []int
		for i, rt := range rts {
			if !stopped[i] && rt.IsLeader() {
				out = append(out, i)
			}
		}
		return out
	}
	servers := func() []string {
		ss, err := st.Servers(context.Background(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	waitUntil(t, "three servers registered", func() bool { return len(servers()) == 3 })
	waitUntil(t, "a leader", func() bool { return len(leaders()) == 1 })
	// Leadership is stable while its holder lives: several maintenance rounds later,
	// the same single leader.
	first := leaders()[0]
	for range 5 {
		time.Sleep(lease / 2)
		if l := leaders(); len(l) > 1 || len(l) == 1 && l[0] != first {
			t.Fatalf("leaders %v, want only %d", l, first)
		}
	}
	for i, rt := range rts {
		if got := rt.Leader(); got != rts[first].Owner() {
			t.Errorf("host %d sees leader %q, want %q", i, got, rts[first].Owner())
		}
	}

	if err := rts[first].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped[first] = true
	waitUntil(t, "a new leader", func() bool { l := leaders(); return len(l) == 1 && l[0] != first })
	waitUntil(t, "the stopped host to leave the servers table", func() bool { return len(servers()) == 2 })
	for _, id := range servers() {
		if id == rts[first].Owner() {
			t.Errorf("the stopped host %s is still registered", id)
		}
	}
}
