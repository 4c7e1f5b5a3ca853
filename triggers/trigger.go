// Package triggers defines the Trigger interface and the registry of trigger kinds.
// Each kind lives in its own sub-package (http, cron, fs, s3, queue) and registers a
// Factory under its manifest name from init, so that the host builds triggers from the
// manifest without knowing them.
//
// The contract of a trigger:
//   - Run blocks until ctx is done, then returns nil (or an error that stopped it early).
//   - It turns each outside event into Submitter.Submit and acknowledges the event to its
//     source only after Submit returned without error: Submit persists before it returns.
//   - It never drops an event silently: what it cannot submit it reports through its
//     logger and leaves for its source to deliver again (or for a rescan to find).
package triggers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
)

// Trigger turns outside events into invocations.
type Trigger interface {
	// Run works until ctx is done.
	Run(ctx context.Context) error
}

// Submitter persists invocations; the runtime implements it.
type Submitter interface {
	// Submit persists invocations and returns when they are durable.
	Submit(ctx context.Context, subs ...fnhost.Submission) ([]store.EnqueueResult, error)
	// Invoke persists one invocation and waits up to wait for its result; when wait runs
	// out it returns the invocation as it stands, not yet terminal.
	Invoke(ctx context.Context, sub fnhost.Submission, wait time.Duration) (*fnhost.Invocation, error)
}

// NextFirer is implemented by triggers that fire on a schedule, so that the API and the
// dashboard can show when they fire next.
type NextFirer interface {
	NextFire() (time.Time, bool)
}

// Router is where HTTP-facing triggers mount their routes on the host's listener.
type Router interface {
	Handle(pattern string, h http.Handler)
}

// Env is what a Factory gets to build one trigger of one function.
type Env struct {
	Function  *manifest.Function
	Trigger   manifest.Trigger
	Manifest  *manifest.Manifest
	Submitter Submitter
	Store     store.Store
	Router    Router
	Logger    *slog.Logger
	// Registerer takes the trigger's Prometheus collectors; register each collector once
	// per process (sync.Once or a package-level vector), since a host has many triggers.
	Registerer prometheus.Registerer
}

// Factory builds a trigger from its manifest entry. It validates what it can and
// returns an error naming the function and the problem.
type Factory func(env Env) (Trigger, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a trigger kind available under its manifest name. It panics when the
// kind is registered twice.
func Register(kind string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[kind]; dup {
		panic("triggers: kind registered twice: " + kind)
	}
	factories[kind] = f
}

// New builds the trigger described by env.Trigger.
func New(env Env) (Trigger, error) {
	mu.RLock()
	f, ok := factories[env.Trigger.Kind]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("function %q: trigger kind %q is not available in this build (have %v)", env.Function.Name, env.Trigger.Kind, Kinds())
	}
	return f(env)
}

// Kinds lists the registered trigger kinds.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(factories))
	for k := range factories {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
