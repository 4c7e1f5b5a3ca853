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

// Wrapper prepares the attempts of a function for what one of its triggers delivers:
// it returns a handler that does its part (download the object an event names, say)
// and calls h. It is called once per trigger of the kind when the host is built; the
// returned handler sees every attempt of the function, whatever its trigger, and must
// pass on those that are not its own untouched.
type Wrapper func(fn *manifest.Function, tr manifest.Trigger, h fnhost.Handler) (fnhost.Handler, error)

var wrappers = map[string]Wrapper{}

// RegisterWrapper sets the Wrapper of a trigger kind. It panics when set twice.
func RegisterWrapper(kind string, w Wrapper) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := wrappers[kind]; dup {
		panic("triggers: wrapper registered twice: " + kind)
	}
	wrappers[kind] = w
}

// Wrap applies the wrappers of fn's triggers to its handler h.
func Wrap(fn *manifest.Function, h fnhost.Handler) (fnhost.Handler, error) {
	mu.RLock()
	defer mu.RUnlock()
	for _, tr := range fn.Triggers {
		w, ok := wrappers[tr.Kind]
		if !ok {
			continue
		}
		wrapped, err := w(fn, tr, h)
		if err != nil {
			return nil, fmt.Errorf("function %q: %s trigger: %w", fn.Name, tr.Kind, err)
		}
		h = wrapped
	}
	return h, nil
}
