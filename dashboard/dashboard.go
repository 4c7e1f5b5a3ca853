// Package dashboard is fnhost's web UI, served by the host at /dashboard/ from files
// embedded in the binary: an overview with live counts and a throughput graph, the
// invocations with filters and keyset paging, each invocation with its event, attempts
// and logs, the functions with their triggers and next cron fires, the queues, the
// failed (dead-letter) set and the instances.
//
// Every page is rendered on the server with html/template and reads without JavaScript;
// a small script adds live updates (server-sent events), keyboard shortcuts and the
// theme switch. Actions (retry, cancel, run now, retry all failed) are HTML forms that
// POST with a CSRF token and answer with a redirect.
//
// Access: with an API key the dashboard asks for it once, in a login form, and keeps a
// signed session cookie; without one (fnhost allows that only on a loopback listener) it
// is open, but answers only requests that name a loopback host, so that a web page
// cannot reach it by DNS rebinding. A read-only dashboard shows everything and offers no
// action.
//
// The dashboard reads the store through indexes only: state counts come from the
// indexes of the live and failed states (Store.Counts), throughput from per-minute
// buckets (Store.Throughput), lists from keyset pages bounded in the rows they examine
// (Filter.MaxScan). Its cost does not grow with the history of succeeded invocations.
package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/dashboard/"

// Backend is what the dashboard needs of the host besides its store: the manifest's
// functions, the instances, and the actions.
type Backend interface {
	// Functions lists the functions in manifest order.
	Functions() []Function
	// Queues maps each queue to the functions that consume it.
	Queues() map[string][]string
	// Servers lists the instances working on the store.
	Servers(ctx context.Context) (Servers, error)
	// Invoke persists an invocation of function whose event carries data, and returns
	// its id.
	Invoke(ctx context.Context, function string, data json.RawMessage) (string, error)
	// Retry runs a finished invocation again.
	Retry(ctx context.Context, id string) (*fnhost.Invocation, error)
	// Cancel cancels an invocation that has not finished.
	Cancel(ctx context.Context, id string) (*fnhost.Invocation, error)
}

// Function is a function as the dashboard shows it: no secrets.
type Function struct {
	Name        string
	Description string
	// HandlerKind is builtin, exec or http; Handler the builtin's name, the command or
	// the URL.
	HandlerKind string
	Handler     string
	Timeout     time.Duration
	MaxAttempts int
	Concurrency int
	Then        []string
	OnFailure   string
	Triggers    []Trigger
}

// Trigger is one trigger of a function.
type Trigger struct {
	Kind    string
	Summary string
	// NextFire is the next slot of a cron trigger.
	NextFire *time.Time
}

// Servers are the instances working on the store.
type Servers struct {
	Items []Server
	// Lease is how long a claim holds without a heartbeat; RescueWithin bounds how long
	// the invocations of an instance that died wait before another one rescues them.
	Lease, RescueWithin time.Duration
}

// Server is one fnhost instance.
type Server struct {
	ID          string
	Hostname    string
	PID         int
	Version     string
	Workers     int
	InFlight    int
	StartedAt   time.Time
	HeartbeatAt time.Time
	// Self marks the instance serving the page, Leader the one that runs maintenance;
	// Alive is false once its heartbeat is older than a lease.
	Self, Leader, Alive bool
}

// Config configures a Dashboard.
type Config struct {
	Store   store.Store
	Backend Backend
	// APIKey, when set, is asked for in the login form; without it the dashboard is
	// open to requests that name a loopback host.
	APIKey string
	// ReadOnly offers no action.
	ReadOnly bool
	Logger   *slog.Logger
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
}

// Dashboard serves the web UI.
type Dashboard struct {
	cfg   Config
	mux   *http.ServeMux
	pages map[string]*template.Template
	// sessionKey signs session cookies; csrfKey the tokens of forms.
	sessionKey, csrfKey []byte
	limiter             *loginLimiter
	// counts, overview and daily keep what several pages and every open overview
	// read, for a second (the day's totals for 30).
	counts   *snapshotCache[map[string]store.FunctionCounts]
	overview *snapshotCache[*overview]
	daily    *snapshotCache[dailyTotals]

	// quit ends the live streams when the host shuts down.
	quit      chan struct{}
	closeOnce sync.Once
}

// New builds a dashboard. It reads (or creates, once for every instance sharing the
// store) the secret that signs the CSRF tokens of an open dashboard.
func New(ctx context.Context, cfg Config) (*Dashboard, error) {
	if cfg.Store == nil || cfg.Backend == nil {
		return nil, errors.New("dashboard: a store and a backend are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dashboard{cfg: cfg, mux: http.NewServeMux(), limiter: newLoginLimiter(), quit: make(chan struct{})}
	var err error
	if d.sessionKey, d.csrfKey, err = keys(ctx, cfg.Store, cfg.APIKey); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if d.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	d.counts = newSnapshotCache(time.Second, func(ctx context.Context) (map[string]store.FunctionCounts, error) {
		return cfg.Store.Counts(ctx, cfg.Now())
	})
	d.overview = newSnapshotCache(time.Second, d.loadOverview)
	d.daily = newSnapshotCache(30*time.Second, d.loadDaily)
	d.routes()
	return d, nil
}

// invalidate makes the next pages read the counts and the overview again: an action
// changed them.
func (d *Dashboard) invalidate() {
	d.counts.invalidate()
	d.overview.invalidate()
}

// Close ends the live streams, so that the host's listener can shut down at once.
func (d *Dashboard) Close() { d.closeOnce.Do(func() { close(d.quit) }) }

// Handler serves every path under Prefix.
func (d *Dashboard) Handler() http.Handler { return d.mux }

func (d *Dashboard) routes() {
	page := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		d.mux.Handle(pattern, d.guard(h))
	}
	page("GET /dashboard/{$}", d.overviewPage)
	page("GET /dashboard/live", d.live)
	page("GET /dashboard/invocations", d.invocationsPage)
	page("GET /dashboard/invocations/{id}", d.invocationPage)
	page("POST /dashboard/invocations/{id}/retry", d.retry)
	page("POST /dashboard/invocations/{id}/cancel", d.cancel)
	page("GET /dashboard/functions", d.functionsPage)
	page("GET /dashboard/functions/{name}", d.functionPage)
	page("POST /dashboard/functions/{name}/run", d.run)
	page("GET /dashboard/queues", d.queuesPage)
	page("GET /dashboard/failed", d.failedPage)
	page("POST /dashboard/failed/retry", d.retryFailed)
	page("GET /dashboard/servers", d.serversPage)
	page("GET /dashboard/login", d.loginPage)
	page("POST /dashboard/login", d.login)
	page("POST /dashboard/logout", d.logout)
	d.mux.Handle("GET /dashboard/static/{file}", d.secure(http.HandlerFunc(d.static)))
	page("/dashboard/", func(w http.ResponseWriter, r *http.Request) error {
		return &httpError{status: http.StatusNotFound, msg: "There is no page at " + r.URL.Path + "."}
	})
}

// httpError is an error a handler answers with: a status and a message for people.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// guard wraps a page: security headers, access (loopback host or session), CSRF on
// POST, read-only, and the rendering of the error a handler returns.
func (d *Dashboard) guard(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return d.secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := d.allow(w, r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			d.fail(w, r, err)
		}
	}))
}

// secure sets the headers every answer carries.
func (d *Dashboard) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// fail answers err: an httpError with its status, a store's not found as 404, anything
// else as 500 (logged).
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
	case errors.Is(err, store.ErrNotFound):
		he = &httpError{status: http.StatusNotFound, msg: "Not found: " + err.Error()}
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		d.cfg.Logger.Error("dashboard", "path", r.URL.Path, "err", err)
		he = &httpError{status: http.StatusInternalServerError, msg: "Something went wrong: " + err.Error()}
	}
	if he.status == 0 {
		return // answered already (a redirect)
	}
	if r.Header.Get("Accept") == "text/event-stream" {
		http.Error(w, he.msg, he.status)
		return
	}
	d.render(w, r, he.status, "error", "Error", map[string]any{"Status": he.status, "StatusText": http.StatusText(he.status), "Message": he.msg})
}

// redirect answers a POST with 303 See Other to path, with a flash message for the next
// page.
func (d *Dashboard) redirect(w http.ResponseWriter, r *http.Request, path, flash string) error {
	if flash != "" {
		setFlash(w, r, flash)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

// safeNext returns next if it is a path of the dashboard, else the overview: a login
// never redirects off the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}
