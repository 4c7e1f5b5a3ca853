package s3_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
	s3trigger "github.com/fnhost/fnhost/triggers/s3"
)

// call is one run of the rig's function.
type call struct {
	typ  string
	rec  s3trigger.Record
	body string // the object's content read through ObjectFrom (created only)
	file string // the content of the attempt's input file, with download
	path string // that file's path
}

// rig is a real runtime on a real SQLite store with one function that records its calls,
// and an HTTP server on loopback that the triggers mount their routes on.
type rig struct {
	t    *testing.T
	fn   string
	st   store.Store
	rt   *runtime.Runtime
	mux  *http.ServeMux
	srv  *httptest.Server
	logs *testlog.Buffer

	// noRead keeps the handler from reading the objects (there are none).
	noRead bool
	// noWait starts triggers without waiting for their first listing.
	noWait bool

	mu  sync.Mutex
	got []call
}

var rigs atomic.Int64

// newRig starts the rig's store and HTTP server; begin starts its runtime.
func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, fn: fmt.Sprintf("objects%d", rigs.Add(1)), mux: http.NewServeMux(), logs: &testlog.Buffer{}}
	r.st = runtimetest.OpenStore(t, sqlite.Options{})
	r.srv = httptest.NewServer(r.mux)
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trigger log:\n%s", r.logs.String())
		}
	})
	return r
}

// begin starts the runtime, with the function's handler wrapped for the triggers cfgs
// (as the host does).
func (r *rig) begin(cfgs ...manifest.S3Trigger) {
	t := r.t
	t.Helper()
	var h fnhost.Handler = fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		c := call{typ: ev.Type}
		if err := json.Unmarshal(ev.Data, &c.rec); err != nil {
			return fnhost.Result{}, fnhost.Permanent(err)
		}
		if ev.Type == "fnhost.s3.created" {
			obj, ok := s3trigger.ObjectFrom(ctx)
			if !ok {
				return fnhost.Result{}, fnhost.Permanent(fmt.Errorf("no object in the context"))
			}
			if r.noRead {
				r.mu.Lock()
				r.got = append(r.got, c)
				r.mu.Unlock()
				return fnhost.Result{}, nil
			}
			body, err := obj.Open(ctx)
			if err != nil {
				return fnhost.Result{}, err
			}
			b, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				return fnhost.Result{}, err
			}
			c.body = string(b)
		}
		if p := fnhost.InputFile(ctx); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return fnhost.Result{}, fnhost.Permanent(err)
			}
			c.file, c.path = string(b), p
		}
		r.mu.Lock()
		r.got = append(r.got, c)
		r.mu.Unlock()
		return fnhost.Result{}, nil
	})
	fn := r.function(cfgs...)
	wrapped, err := triggers.Wrap(fn, h)
	if err != nil {
		t.Fatal(err)
	}
	r.rt = runtimetest.Start(t, runtime.Config{
		Store: r.st, Workers: 8,
		Functions: []*runtime.Function{{Name: r.fn, Handler: wrapped, Timeout: 30 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 3, Backoff: "fixed", InitialInterval: 20 * time.Millisecond}}},
	})
}

func (r *rig) function(cfgs ...manifest.S3Trigger) *manifest.Function {
	fn := &manifest.Function{Name: r.fn}
	for i := range cfgs {
		c := cfgs[i]
		fn.Triggers = append(fn.Triggers, manifest.Trigger{Kind: "s3", S3: &c})
	}
	return fn
}

// hookURL is the receiver's URL on the rig's server.
func (r *rig) hookURL() string { return r.srv.URL + s3trigger.WebhookPath }

// start builds the trigger of cfg, runs it, and returns a function that stops it.
func (r *rig) start(cfg manifest.S3Trigger) func() {
	r.t.Helper()
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if len(cfg.Events) == 0 {
		cfg.Events = []string{"created"}
	}
	if cfg.Mode == "" {
		cfg.Mode = "webhook"
	}
	if cfg.Reconcile == 0 {
		cfg.Reconcile = time.Hour
	}
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	tr := manifest.Trigger{Kind: "s3", S3: &cfg}
	trig, err := triggers.New(triggers.Env{
		Function:   &manifest.Function{Name: r.fn, Triggers: []manifest.Trigger{tr}},
		Trigger:    tr,
		Submitter:  r.rt,
		Store:      r.st,
		Router:     r.mux,
		Logger:     slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- trig.Run(ctx) }()
	if !r.noWait {
		select {
		case <-s3trigger.Ready(trig):
		case err := <-done:
			r.t.Fatalf("Run returned at start: %v", err)
		case <-time.After(30 * time.Second):
			r.t.Fatal("the trigger did not become ready")
		}
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				r.t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			r.t.Error("Run did not return within 15s of its context's end")
		}
	}
	r.t.Cleanup(stop)
	return stop
}

func (r *rig) calls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// keys lists "type key etag" of every call so far, sorted.
func (r *rig) keys() []string {
	var out []string
	for _, c := range r.calls() {
		out = append(out, c.typ+" "+c.rec.S3.Object.Key+" "+c.rec.S3.Object.ETag)
	}
	sort.Strings(out)
	return out
}

// waitFor polls until cond holds.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("gave up waiting for %s; calls: %q", what, r.keys())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCalls waits until there are at least n calls.
func (r *rig) waitCalls(n int) {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("%d calls", n), func() bool { return len(r.calls()) >= n })
}

// stored counts the invocations of the rig's function in the store.
func (r *rig) stored() int {
	r.t.Helper()
	n := 0
	cursor := ""
	for {
		page, err := r.st.List(context.Background(), store.Filter{Function: r.fn, Limit: 500, Cursor: cursor})
		if err != nil {
			r.t.Fatal(err)
		}
		n += len(page.Items)
		if page.NextCursor == "" {
			return n
		}
		cursor = page.NextCursor
	}
}
