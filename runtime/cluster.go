package runtime

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// LeaderKey is the state key under which the hosts sharing a store elect the one that
// runs maintenance (rescue of expired leases, pruning).
const LeaderKey = "fnhost/leader"

// leadership is the stored value of LeaderKey.
type leadership struct {
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
}

// presence registers this host in the store's servers table and renews its heartbeat
// until Stop, then unregisters it.
func (r *Runtime) presence() {
	defer r.completerWG.Done()
	t := time.NewTicker(r.heartbeatEvery())
	defer t.Stop()
	for {
		r.beat()
		select {
		case <-r.hbStop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.st.RemoveServer(ctx, r.owner); err != nil {
				r.log.Warn("unregister from the servers table", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

func (r *Runtime) heartbeatEvery() time.Duration { return max(r.cfg.Lease/3, 10*time.Millisecond) }

// beat writes this host's heartbeat.
func (r *Runtime) beat() {
	host, _ := os.Hostname()
	err := r.st.ServerHeartbeat(r.runCtx, store.Server{
		ID: r.owner, Hostname: host, PID: os.Getpid(), Version: fnhost.Version,
		Workers: r.cfg.Workers, InFlight: r.InFlight(), StartedAt: r.started, HeartbeatAt: time.Now().UTC(),
	})
	if err != nil && r.runCtx.Err() == nil {
		r.log.Error("server heartbeat", "err", err)
	}
}

// lead takes or renews the leadership when it is free, expired or already this
// host's, and reports whether this host leads until its next call. The leadership
// lasts one lease: when its holder dies, another host takes over within a lease.
func (r *Runtime) lead(now time.Time) bool {
	cur, err := r.st.GetState(r.runCtx, LeaderKey)
	if err != nil {
		r.log.Error("leader election", "err", err)
		r.leader.Store(false)
		return false
	}
	var l leadership
	if cur != nil {
		if json.Unmarshal(cur, &l) != nil {
			l = leadership{}
		}
		if l.ID != r.owner && l.Until.After(now) {
			r.leader.Store(false)
			r.leaderID.Store(l.ID)
			return false
		}
	}
	next, _ := json.Marshal(leadership{ID: r.owner, Until: now.Add(r.cfg.Lease)})
	ok, err := r.st.CompareAndPutState(r.runCtx, LeaderKey, cur, next)
	if err != nil {
		r.log.Error("leader election", "err", err)
		ok = false
	}
	if ok && !r.leader.Load() {
		r.log.Info("this host now leads maintenance (rescue of expired leases, pruning)")
	}
	r.leader.Store(ok)
	if ok {
		r.leaderID.Store(r.owner)
	}
	return ok
}

// resign gives up the leadership at Stop, so that another host takes it at once.
func (r *Runtime) resign() {
	if !r.leader.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cur, err := r.st.GetState(ctx, LeaderKey)
	if err != nil || cur == nil {
		return
	}
	var l leadership
	if json.Unmarshal(cur, &l) != nil || l.ID != r.owner {
		return
	}
	next, _ := json.Marshal(leadership{ID: "", Until: time.Time{}})
	_, _ = r.st.CompareAndPutState(ctx, LeaderKey, cur, next)
	r.leader.Store(false)
}

// IsLeader reports whether this host leads maintenance now.
func (r *Runtime) IsLeader() bool { return r.leader.Load() }

// Leader is the id of the host that led maintenance when this one last looked.
func (r *Runtime) Leader() string {
	id, _ := r.leaderID.Load().(string)
	return id
}

// Lease is how long a claim holds without a heartbeat.
func (r *Runtime) Lease() time.Duration { return r.cfg.Lease }

// RescueWithin bounds how long the invocations of a host that died stay running
// before another host rescues them: their lease runs out, and the leader's next
// maintenance round (every half lease) finds them; when the leader itself died, the
// leadership moves within a lease too.
func (r *Runtime) RescueWithin() time.Duration { return r.cfg.Lease + r.maintenanceEvery() }

func (r *Runtime) maintenanceEvery() time.Duration { return max(r.cfg.Lease/2, 100*time.Millisecond) }

// StartedAt is when the runtime started.
func (r *Runtime) StartedAt() time.Time { return r.started }

// notifications is the store's channel of work made ready by other hosts, or nil.
func (r *Runtime) notifications() <-chan struct{} {
	if n, ok := r.st.(store.Notifier); ok {
		return n.Notify()
	}
	return nil
}
