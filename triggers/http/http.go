// Package http is the HTTP trigger: routes on the host's listener that turn requests into
// invocations. It registers itself as the trigger kind "http".
//
// A route answers in one of two modes:
//   - async (the default) persists the invocation and answers 202 with its id and a
//     status URL, only once the store has it;
//   - sync runs the invocation and answers with the handler's result, or 202 with the
//     status URL when the result is not there within the function's time budget.
//
// A route may require a key (X-Fnhost-Key header or ?code=) or an HMAC-SHA256 signature
// of the raw body (GitHub's X-Hub-Signature-256 by default); both are compared in
// constant time, and refusals are counted in fnhost_http_trigger_refused_total.
package http

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/httpjson"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/triggers"
)

// Kind is the trigger's name in the manifest.
const Kind = "http"

// EventType is the CloudEvents type of the events this trigger makes.
const EventType = "fnhost.http.request"

// MaxSyncWait caps how long a sync route waits for its invocation's result.
const MaxSyncWait = 5 * time.Minute

// KeyHeader carries the key of a route with key auth; the query parameter KeyParam is
// the alternative for senders that cannot set headers.
const (
	KeyHeader = "X-Fnhost-Key"
	KeyParam  = "code"
)

// InvocationHeader names the invocation on every answer of a sync route;
// DuplicateHeader is set when an Idempotency-Key matched an earlier request.
const (
	InvocationHeader = "X-Fnhost-Invocation-Id"
	DuplicateHeader  = "X-Fnhost-Duplicate"
)

func init() {
	triggers.Register(Kind, New)
}

var _ triggers.Trigger = (*Trigger)(nil)

// Trigger is one HTTP route of one function. Its routes are mounted when it is built;
// Run only waits for the end.
type Trigger struct {
	function string
	route    manifest.HTTPTrigger
	pattern  string
	params   []string
	sub      triggers.Submitter
	st       store.Store
	log      *slog.Logger
	limit    int64
	wait     time.Duration
	refused  *prometheus.CounterVec

	// keyHash is the SHA-256 of the route's key, so that comparing it takes the same
	// time whatever the length of the key sent.
	keyHash    []byte
	hmacSecret []byte
	hmacHeader string
}

// New builds the trigger described by env and mounts its routes on env.Router: one
// pattern per method, and a fallback that answers other methods on the same path with
// 405 and a JSON error.
func New(env triggers.Env) (triggers.Trigger, error) {
	name := "?"
	if env.Function != nil {
		name = env.Function.Name
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("function %q: http trigger: %s", name, fmt.Sprintf(format, args...))
	}
	switch {
	case env.Function == nil:
		return nil, fail("no function")
	case env.Trigger.HTTP == nil:
		return nil, fail("no http settings")
	case env.Trigger.HTTP.Path == "" || env.Trigger.HTTP.Path[0] != '/':
		return nil, fail("path %q must start with /", env.Trigger.HTTP.Path)
	case env.Submitter == nil:
		return nil, fail("no submitter")
	case env.Router == nil:
		return nil, fail("no router to mount %s on", env.Trigger.HTTP.Path)
	}
	route := *env.Trigger.HTTP
	if len(route.Methods) == 0 {
		route.Methods = []string{nethttp.MethodPost}
	}
	if route.Mode == "" {
		route.Mode = "async"
	}
	if route.Mode != "async" && route.Mode != "sync" {
		return nil, fail("unknown mode %q (want sync or async)", route.Mode)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Trigger{
		function: name,
		route:    route,
		pattern:  goPattern(route.Path),
		params:   wildcards(route.Path),
		sub:      env.Submitter,
		st:       env.Store,
		log:      log,
		limit:    bodyLimit(route, env.Manifest),
		wait:     syncWait(env.Function),
	}
	if k := route.Auth.Key.Reveal(); k != "" {
		h := sha256.Sum256([]byte(k))
		t.keyHash = h[:]
	}
	if hm := route.Auth.HMAC; hm != nil {
		if hm.Secret.Reveal() == "" {
			return nil, fail("hmac: the secret is empty")
		}
		t.hmacSecret = []byte(hm.Secret.Reveal())
		t.hmacHeader = hm.Header
		if t.hmacHeader == "" {
			t.hmacHeader = manifest.DefaultHMACHeader
		}
		t.hmacHeader = nethttp.CanonicalHeaderKey(t.hmacHeader)
	}
	refused, err := refusedCounter(env.Registerer)
	if err != nil {
		return nil, fail("%v", err)
	}
	t.refused = refused
	for _, reason := range t.reasons() {
		t.refused.WithLabelValues(name, reason)
	}

	for _, m := range route.Methods {
		p := strings.ToUpper(m) + " " + t.pattern
		if err := handle(env.Router, p, t); err != nil {
			return nil, fail("route %s: %v", p, err)
		}
	}
	if fb := newFallback(env.Manifest); fb != nil && fb.covers(t.pattern) {
		// A sibling trigger on the same path may have mounted it already.
		if err := handle(env.Router, t.pattern, fb); err != nil {
			log.Debug("405 fallback not mounted", "pattern", t.pattern, "err", err)
		}
	}
	return t, nil
}

// Run waits until ctx is done: the routes were mounted by New.
func (t *Trigger) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// bodyLimit is the route's max_body_bytes, else the host's, else the default.
func bodyLimit(r manifest.HTTPTrigger, m *manifest.Manifest) int64 {
	switch {
	case r.MaxBodyBytes > 0:
		return r.MaxBodyBytes
	case m != nil && m.Host.MaxBodyBytes > 0:
		return m.Host.MaxBodyBytes
	}
	return manifest.DefaultMaxBodyBytes
}

// syncWait is how long a sync route waits: the function's timeout times its attempts,
// at most MaxSyncWait.
func syncWait(f *manifest.Function) time.Duration {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = manifest.DefaultTimeout
	}
	n := time.Duration(max(f.Retry.MaxAttempts, 1))
	if timeout > MaxSyncWait/n {
		return MaxSyncWait
	}
	return timeout * n
}

// ServeHTTP checks the request, persists its invocation and answers.
func (t *Trigger) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if t.keyHash != nil && !t.checkKey(w, r) {
		return
	}
	body, ok := t.readBody(w, r)
	if !ok {
		return
	}
	if t.hmacSecret != nil && !t.checkSignature(w, r, body) {
		return
	}
	data, err := t.eventData(r, body)
	if err != nil {
		t.log.Error("encode event", "err", err)
		writeError(w, nethttp.StatusInternalServerError, "internal", "the request could not be turned into an event", "")
		return
	}
	sub := fnhost.Submission{
		ID:       fnhost.NewID(),
		Function: t.function,
		Trigger:  Kind,
		Event:    fnhost.NewEvent("fnhost/http/"+t.function, EventType, r.URL.Path, data),
		DedupKey: strings.TrimSpace(r.Header.Get("Idempotency-Key")),
	}
	if t.route.Mode == "sync" {
		t.invoke(w, r, sub)
		return
	}
	t.submit(w, r, sub)
}

// readBody reads the body within the route's limit, answering 413 beyond it.
func (t *Trigger) readBody(w nethttp.ResponseWriter, r *nethttp.Request) ([]byte, bool) {
	if r.ContentLength > t.limit {
		t.tooLarge(w, r)
		return nil, false
	}
	body, err := io.ReadAll(nethttp.MaxBytesReader(w, r.Body, t.limit))
	if err != nil {
		var tooBig *nethttp.MaxBytesError
		if errors.As(err, &tooBig) {
			t.tooLarge(w, r)
		} else {
			writeError(w, nethttp.StatusBadRequest, "bad_body", "the body could not be read: "+err.Error(), "")
		}
		return nil, false
	}
	return body, true
}

func (t *Trigger) tooLarge(w nethttp.ResponseWriter, r *nethttp.Request) {
	t.refuse(r, reasonTooLarge)
	writeError(w, nethttp.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("the body exceeds the limit of %d bytes of %s %s", t.limit, r.Method, t.route.Path), "")
}

// accepted is the answer of an async route, and of a sync route whose invocation has
// not finished in time.
func (t *Trigger) submit(w nethttp.ResponseWriter, r *nethttp.Request, sub fnhost.Submission) {
	res, err := t.sub.Submit(r.Context(), sub)
	if err != nil || len(res) != 1 {
		t.submitFailed(w, r, err)
		return
	}
	a := httpjson.Accepted{ID: res[0].ID, Function: t.function, State: fnhost.StatePending, Duplicate: res[0].Duplicate}
	if a.Duplicate {
		a.State = ""
		if t.st != nil {
			if inv, err := t.st.Get(r.Context(), a.ID); err == nil {
				a.State = inv.State
			}
		}
	}
	httpjson.WriteAccepted(w, a)
}

func (t *Trigger) invoke(w nethttp.ResponseWriter, r *nethttp.Request, sub fnhost.Submission) {
	inv, err := t.sub.Invoke(r.Context(), sub, t.wait)
	if inv == nil {
		if r.Context().Err() != nil {
			// The client went away; the invocation, if persisted, runs on.
			t.log.Debug("sync request ended by the client before its result", "err", err)
			return
		}
		t.submitFailed(w, r, err)
		return
	}
	dup := inv.ID != sub.ID
	w.Header().Set(InvocationHeader, inv.ID)
	if dup {
		w.Header().Set(DuplicateHeader, "true")
	}
	switch inv.State {
	case fnhost.StateSucceeded:
		if err := writeOutput(w, r, inv.Output); err != nil {
			t.log.Warn("the function's output is not a valid HTTP response", "invocation", inv.ID, "err", err)
			writeError(w, nethttp.StatusBadGateway, "bad_response",
				fmt.Sprintf("the output of function %q is not a valid HTTP response: %v", t.function, err), inv.ID)
		}
	case fnhost.StateFailed, fnhost.StateCancelled:
		msg := fmt.Sprintf("function %q %s", t.function, inv.State)
		if inv.Error != nil && *inv.Error != "" {
			msg += ": " + *inv.Error
		}
		code := "invocation_failed"
		if inv.State == fnhost.StateCancelled {
			code = "invocation_cancelled"
		}
		writeError(w, nethttp.StatusBadGateway, code, msg, inv.ID)
	default:
		w.Header().Set("Location", httpjson.StatusURL(inv.ID))
		httpjson.WriteAccepted(w, httpjson.Accepted{ID: inv.ID, Function: t.function, State: inv.State, Duplicate: dup})
	}
}

// submitFailed answers 503 when the invocation could not be persisted: the sender
// should deliver the event again.
func (t *Trigger) submitFailed(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	if err == nil {
		err = errors.New("no result")
	}
	t.log.Error("submit", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	writeError(w, nethttp.StatusServiceUnavailable, "unavailable", "the event could not be persisted; deliver it again", "")
}

func writeError(w nethttp.ResponseWriter, status int, code, msg, id string) {
	httpjson.WriteError(w, status, httpjson.Error{Code: code, Message: msg, InvocationID: id})
}
