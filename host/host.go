// Package host wires a manifest, a store, the executor, the triggers and the HTTP
// listener into one running function host. It is also the embedding API for Go users
// who build their own host binary with their own builtin functions:
//
//	m, err := manifest.Load("functions.yaml")
//	h, err := host.New(m, host.WithFunction("resize", resize))
//	err = h.Run(ctx)
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/dashboard"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/triggers"

	// The embedded default store and the trigger kinds.
	_ "github.com/fnhost/fnhost/store/postgres"
	_ "github.com/fnhost/fnhost/store/sqlite"
	_ "github.com/fnhost/fnhost/triggers/cron"
	_ "github.com/fnhost/fnhost/triggers/fs"
	_ "github.com/fnhost/fnhost/triggers/http"
	_ "github.com/fnhost/fnhost/triggers/queue"
	_ "github.com/fnhost/fnhost/triggers/s3"
)

// Option customises a Host.
type Option func(*options)

type options struct {
	registry *functions.Registry
	logger   *slog.Logger
	store    store.Store
	logOut   io.Writer
}

// WithFunction adds a builtin function that the manifest can name with `builtin: NAME`.
// It takes precedence over a builtin of the same name that fnhost ships.
func WithFunction(name string, fn fnhost.HandlerFunc) Option {
	return func(o *options) {
		if o.registry == nil {
			o.registry = functions.NewRegistry()
		}
		if err := o.registry.Register(name, fn); err != nil {
			panic(fmt.Sprintf("host.WithFunction: %v", err))
		}
	}
}

// WithLogger sets the host's logger instead of one built from the manifest's host.log.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithLogOutput sets where the logger built from the manifest writes (default stderr).
func WithLogOutput(w io.Writer) Option { return func(o *options) { o.logOut = w } }

// WithStore uses an already open store instead of opening host.storage. The host does
// not close it.
func WithStore(s store.Store) Option { return func(o *options) { o.store = s } }

// Host is a running fnhost: open it with New, run it with Run.
type Host struct {
	m         *manifest.Manifest
	log       *slog.Logger
	st        store.Store
	ownStore  bool
	rt        *runtime.Runtime
	triggers  []namedTrigger
	mux       *http.ServeMux
	reg       *prometheus.Registry
	started   time.Time
	ready     chan struct{}
	listener  net.Listener
	apiKey    string
	functions []*runtime.Function
	dash      *dashboard.Dashboard
}

type namedTrigger struct {
	function, kind string
	t              triggers.Trigger
}

// New opens the store and builds handlers, the executor and the triggers from m. It
// does not start anything; Run does.
func New(m *manifest.Manifest, opts ...Option) (*Host, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	log := o.logger
	if log == nil {
		log = NewLogger(o.logOut, m.Host.LogFormat, m.Host.LogLevel)
	}
	reg := functions.Builtins
	if o.registry != nil {
		reg = o.registry.With(functions.Builtins)
	}
	h := &Host{
		m: m, log: log, mux: http.NewServeMux(), reg: prometheus.NewRegistry(),
		ready: make(chan struct{}), apiKey: m.Host.APIKey.Reveal(),
	}
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var fns []*runtime.Function
	var problems []string
	for _, name := range m.Order {
		f := m.Functions[name]
		handler, err := functions.New(f, functions.Options{Registry: reg})
		if err != nil {
			problems = append(problems, err.Error()) // it names the function
			continue
		}
		if handler, err = triggers.Wrap(f, handler); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		concurrency := f.Concurrency
		for _, tr := range f.Triggers {
			// overlap: queue runs the slots one after another.
			if tr.Cron != nil && tr.Cron.Overlap == "queue" && concurrency == 0 {
				concurrency = 1
			}
		}
		fns = append(fns, &runtime.Function{
			Name: name, Handler: handler, Timeout: f.Timeout, Retry: f.Retry,
			Concurrency: concurrency, Then: f.Then, OnFailure: f.OnFailure,
		})
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	h.functions = fns

	h.st = o.store
	if h.st == nil {
		st, err := store.Open(context.Background(), m.Host.Storage)
		if err != nil {
			return nil, err
		}
		h.st, h.ownStore = st, true
	}
	queues := map[string][]string{}
	for _, name := range m.Order {
		for _, tr := range m.Functions[name].Triggers {
			if tr.Queue != nil {
				queues[tr.Queue.Name] = append(queues[tr.Queue.Name], name)
			}
		}
	}
	rt, err := runtime.New(runtime.Config{
		Store: h.st, Functions: fns, Workers: m.Host.Workers, Lease: m.Host.Lease,
		MaxLogBytes: m.Host.MaxLogBytes, Retention: m.Host.Retention, Logger: log,
		Metrics: runtime.NewMetrics(h.reg), Queues: queues,
	})
	if err != nil {
		h.closeStore()
		return nil, err
	}
	h.rt = rt
	h.reg.MustRegister(newStoreCollector(h.st))

	for _, name := range m.Order {
		f := m.Functions[name]
		for _, tr := range f.Triggers {
			t, err := triggers.New(triggers.Env{
				Function: f, Trigger: tr, Manifest: m, Submitter: rt, Store: h.st,
				Router: h.mux, Logger: log.With("function", name, "trigger", tr.Kind), Registerer: h.reg,
			})
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			h.triggers = append(h.triggers, namedTrigger{name, tr.Kind, t})
		}
	}
	if len(problems) > 0 {
		h.closeStore()
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	h.routes()
	if err := h.mountDashboard(); err != nil {
		h.closeStore()
		return nil, err
	}
	return h, nil
}

// Runtime is the host's executor.
func (h *Host) Runtime() *runtime.Runtime { return h.rt }

// Store is the host's store.
func (h *Host) Store() store.Store { return h.st }

// Handler is the host's HTTP handler: triggers, /api/v1, the dashboard, health and
// metrics.
func (h *Host) Handler() http.Handler { return h.mux }

// Addr is the listener's address once Run has bound it.
func (h *Host) Addr() string {
	<-h.ready
	if h.listener == nil {
		return ""
	}
	return h.listener.Addr().String()
}

// Run starts the executor, the triggers and the listener, and blocks until ctx is done.
// It then stops intake, lets running invocations finish within the manifest's
// shutdown_timeout, releases the rest, and closes the store.
func (h *Host) Run(ctx context.Context) error {
	defer h.closeStore()
	ln, err := net.Listen("tcp", h.m.Host.Listen)
	if err != nil {
		close(h.ready)
		return fmt.Errorf("listen on %s: %w", h.m.Host.Listen, err)
	}
	h.listener = ln
	h.started = time.Now()
	if err := h.rt.Start(ctx); err != nil {
		close(h.ready)
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: h.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)}
	if h.dash != nil {
		// Live dashboard streams end at once, so that the listener's shutdown does
		// not wait for them.
		srv.RegisterOnShutdown(h.dash.Close)
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	tctx, stopTriggers := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{}, len(h.triggers))
	for _, nt := range h.triggers {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := nt.t.Run(tctx); err != nil && !errors.Is(err, context.Canceled) {
				h.log.Error("trigger stopped", "function", nt.function, "trigger", nt.kind, "err", err)
			}
		}()
	}
	close(h.ready)
	attrs := []any{"version", fnhost.Version, "listen", "http://" + ln.Addr().String(),
		"storage", h.m.Host.RedactedStorage(), "functions", len(h.functions), "workers", h.m.Host.Workers}
	if h.dash != nil {
		attrs = append(attrs, "dashboard", "http://"+ln.Addr().String()+dashboard.Prefix)
	}
	h.log.Info("fnhost is running", attrs...)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-srvErr:
	}
	h.log.Info("shutting down: intake stops, running invocations get to finish", "deadline", h.m.Host.ShutdownTimeout)
	stopTriggers()
	for range h.triggers {
		<-done
	}
	sctx, cancel := context.WithTimeout(context.Background(), h.m.Host.ShutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := h.rt.Stop(sctx); err != nil {
		h.log.Error("stop executor", "err", err)
	}
	h.log.Info("fnhost stopped")
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

func (h *Host) closeStore() {
	if h.ownStore && h.st != nil {
		if err := h.st.Close(); err != nil {
			h.log.Error("close store", "err", err)
		}
		h.st = nil
	}
}

// NewLogger builds the host's slog logger: format text or json, level debug, info,
// warn or error; w defaults to stderr.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
