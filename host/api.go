package host

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/httpjson"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/triggers"
)

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func writeError(w http.ResponseWriter, status int, code, format string, args ...any) {
	httpjson.WriteError(w, status, httpjson.Error{Code: code, Message: fmt.Sprintf(format, args...)})
}

func (h *Host) routes() {
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))

	api := func(pattern string, fn http.HandlerFunc) { h.mux.Handle(pattern, h.authAPI(fn)) }
	api("GET /api/v1/functions", h.listFunctions)
	api("GET /api/v1/functions/{name}", h.getFunction)
	api("POST /api/v1/functions/{name}/invocations", h.invoke)
	api("GET /api/v1/invocations", h.listInvocations)
	api("GET /api/v1/invocations/{id}", h.getInvocation)
	api("POST /api/v1/invocations/{id}/retry", h.retry)
	api("POST /api/v1/invocations/{id}/cancel", h.cancel)
	api("GET /api/v1/servers", h.servers)
	api("GET /api/v1/queues", h.listQueues)
	api("POST /api/v1/queues/{name}/messages", h.publish)
	api("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no API route %s %s", r.Method, r.URL.Path)
	})
}

// authAPI requires the API key when the manifest sets one: as "Authorization: Bearer
// KEY" or "X-Fnhost-Key: KEY", compared in constant time.
func (h *Host) authAPI(next http.Handler) http.Handler {
	if h.apiKey == "" {
		return next
	}
	want := []byte(h.apiKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Fnhost-Key")
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = b
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fnhost"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API key is required (Authorization: Bearer KEY or X-Fnhost-Key)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Host) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-h.ready:
	default:
		writeError(w, http.StatusServiceUnavailable, "starting", "fnhost is starting")
		return
	}
	// One indexed lookup proves the store answers; counting rows on every probe would
	// cost a scan of the whole table.
	if _, err := h.st.Get(r.Context(), "readyz"); err != nil && !errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "store: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// FunctionView is a function as the API shows it: no secrets.
type FunctionView struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Handler     string        `json:"handler"`
	HandlerKind string        `json:"handler_kind"`
	Timeout     string        `json:"timeout"`
	Retry       RetryView     `json:"retry"`
	Concurrency int           `json:"concurrency"`
	Then        []string      `json:"then"`
	OnFailure   string        `json:"on_failure,omitempty"`
	Triggers    []TriggerView `json:"triggers"`
}

// RetryView is a retry policy as the API shows it.
type RetryView struct {
	MaxAttempts     int     `json:"max_attempts"`
	Backoff         string  `json:"backoff"`
	InitialInterval string  `json:"initial_interval"`
	MaxInterval     string  `json:"max_interval"`
	Jitter          float64 `json:"jitter"`
}

// TriggerView is one trigger of a function as the API shows it.
type TriggerView struct {
	Kind    string `json:"kind"`
	Summary string `json:"summary"`
	// NextFire is the next slot of a cron trigger.
	NextFire *time.Time `json:"next_fire,omitempty"`
}

func (h *Host) functionView(f *manifest.Function) FunctionView {
	v := FunctionView{
		Name: f.Name, Description: f.Description, HandlerKind: f.Handler.Kind(), Timeout: f.Timeout.String(),
		Retry: RetryView{
			MaxAttempts: f.Retry.MaxAttempts, Backoff: f.Retry.Backoff, InitialInterval: f.Retry.InitialInterval.String(),
			MaxInterval: f.Retry.MaxInterval.String(), Jitter: f.Retry.Jitter,
		},
		Concurrency: f.Concurrency, Then: f.Then, OnFailure: f.OnFailure, Triggers: []TriggerView{},
	}
	if v.Then == nil {
		v.Then = []string{}
	}
	switch v.HandlerKind {
	case "builtin":
		v.Handler = f.Handler.Builtin
	case "exec":
		v.Handler = strings.Join(f.Handler.Exec, " ")
	case "http":
		v.Handler = f.Handler.HTTP
	}
	var built []triggers.Trigger // h.triggers holds f's triggers in manifest order
	for _, nt := range h.triggers {
		if nt.function == f.Name {
			built = append(built, nt.t)
		}
	}
	for i, t := range f.Triggers {
		tv := h.triggerView(t)
		if i < len(built) {
			if nf, ok := built[i].(triggers.NextFirer); ok {
				if at, ok := nf.NextFire(); ok {
					tv.NextFire = &at
				}
			}
		}
		v.Triggers = append(v.Triggers, tv)
	}
	return v
}

func (h *Host) triggerView(t manifest.Trigger) TriggerView {
	v := TriggerView{Kind: t.Kind}
	switch {
	case t.HTTP != nil:
		v.Summary = fmt.Sprintf("%s %s (%s)", strings.Join(t.HTTP.Methods, ","), t.HTTP.Path, t.HTTP.Mode)
	case t.Cron != nil:
		v.Summary = t.Cron.Schedule
		if t.Cron.Timezone != "" {
			v.Summary += " (" + t.Cron.Timezone + ")"
		}
	case t.FS != nil:
		v.Summary = t.FS.Path + "/" + t.FS.Pattern
	case t.S3 != nil:
		v.Summary = fmt.Sprintf("%s/%s*%s (%s)", t.S3.Bucket, t.S3.Prefix, t.S3.Suffix, t.S3.Mode)
	case t.Queue != nil:
		v.Summary = t.Queue.Name
	}
	return v
}

func (h *Host) listFunctions(w http.ResponseWriter, r *http.Request) {
	items := make([]FunctionView, 0, len(h.m.Order))
	for _, name := range h.m.Order {
		items = append(items, h.functionView(h.m.Functions[name]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": ""})
}

func (h *Host) getFunction(w http.ResponseWriter, r *http.Request) {
	f, ok := h.m.Functions[r.PathValue("name")]
	if !ok {
		writeError(w, http.StatusNotFound, "function_not_found", "no function %q", r.PathValue("name"))
		return
	}
	writeJSON(w, http.StatusOK, h.functionView(f))
}

// readBody reads a request body within the host's limit, answering 413 beyond it.
func (h *Host) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.m.Host.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds %d bytes", tooBig.Limit)
		} else {
			writeError(w, http.StatusBadRequest, "bad_body", "read body: %v", err)
		}
		return nil, false
	}
	return body, true
}

// invoke persists an invocation of a function. The body is the event's data (JSON), or
// a whole CloudEvent with Content-Type application/cloudevents+json. Query: sync=1 waits
// for the result, delay=30s or run_at=RFC3339 schedules it, dedup_key (or an
// Idempotency-Key header) makes it unique, priority orders it.
func (h *Host) invoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := h.rt.Function(name); !ok {
		writeError(w, http.StatusNotFound, "function_not_found", "no function %q", name)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	sub := fnhost.Submission{Function: name, Trigger: "api", DedupKey: q.Get("dedup_key")}
	if sub.DedupKey == "" {
		sub.DedupKey = r.Header.Get("Idempotency-Key")
	}
	if t := q.Get("trigger"); t == "cli" {
		sub.Trigger = t
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents+json") {
		if err := json.Unmarshal(body, &sub.Event); err != nil {
			writeError(w, http.StatusBadRequest, "bad_event", "the body is not a CloudEvent: %v", err)
			return
		}
		if err := sub.Event.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, "bad_event", "%v", err)
			return
		}
	} else {
		data := json.RawMessage(strings.TrimSpace(string(body)))
		if len(data) > 0 && !json.Valid(data) {
			writeError(w, http.StatusBadRequest, "bad_json", "the body must be JSON (the event's data); send text as a JSON string")
			return
		}
		sub.Event = fnhost.NewEvent("fnhost/"+sub.Trigger, "fnhost.invoke", "", data)
	}
	if p := q.Get("priority"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_priority", "priority must be an integer, got %q", p)
			return
		}
		sub.Priority = n
	}
	if d := q.Get("delay"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil || dur < 0 {
			writeError(w, http.StatusBadRequest, "bad_delay", "delay must be a duration such as 30s or 5m, got %q", d)
			return
		}
		sub.RunAt = time.Now().Add(dur).UTC()
	}
	if at := q.Get("run_at"); at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_run_at", "run_at must be an RFC 3339 time, got %q", at)
			return
		}
		sub.RunAt = t.UTC()
	}
	sync := isTrue(q.Get("sync"))
	wait := 60 * time.Second
	if t := q.Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_timeout", "timeout must be a positive duration, got %q", t)
			return
		}
		wait = d
	}

	if sync && sub.RunAt.IsZero() {
		inv, err := h.rt.Invoke(r.Context(), sub, wait)
		if err != nil && inv == nil {
			h.submitError(w, err)
			return
		}
		if !inv.State.Terminal() {
			httpjson.WriteAccepted(w, httpjson.Accepted{ID: inv.ID, Function: name, State: inv.State})
			return
		}
		writeJSON(w, http.StatusOK, inv)
		return
	}
	res, err := h.rt.Submit(r.Context(), sub)
	if err != nil {
		h.submitError(w, err)
		return
	}
	state := fnhost.StatePending
	if !sub.RunAt.IsZero() && sub.RunAt.After(time.Now()) {
		state = fnhost.StateScheduled
	}
	a := httpjson.Accepted{ID: res[0].ID, Function: name, State: state, Duplicate: res[0].Duplicate}
	if a.Duplicate {
		a.State = ""
	}
	httpjson.WriteAccepted(w, a)
}

func (h *Host) submitError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, runtime.ErrUnknownFunction):
		writeError(w, http.StatusNotFound, "function_not_found", "%v", err)
	case errors.Is(err, runtime.ErrUnknownQueue):
		writeError(w, http.StatusNotFound, "queue_not_found", "%v", err)
	case errors.Is(err, runtime.ErrStopped):
		writeError(w, http.StatusServiceUnavailable, "stopping", "fnhost is shutting down; try again")
	default:
		h.log.Error("submit", "err", err)
		writeError(w, http.StatusInternalServerError, "store_error", "the invocation could not be persisted: %v", err)
	}
}

func isTrue(s string) bool {
	b, err := strconv.ParseBool(s)
	return err == nil && b
}

func (h *Host) listInvocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.Filter{Function: q.Get("function"), Trigger: q.Get("trigger"), ParentID: q.Get("parent_id"), Cursor: q.Get("cursor"), Limit: 50}
	if s := q.Get("state"); s != "" {
		st, err := fnhost.ParseState(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_state", "%v", err)
			return
		}
		f.State = st
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "bad_limit", "limit must be an integer from 1 to 1000, got %q", l)
			return
		}
		f.Limit = n
	}
	for key, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "bad_"+key, "%s must be an RFC 3339 time, got %q", key, v)
				return
			}
			*dst = t.UTC()
		}
	}
	page, err := h.st.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusBadRequest, "list_failed", "%v", err)
		return
	}
	if page.Items == nil {
		page.Items = []*fnhost.Invocation{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (h *Host) getInvocation(w http.ResponseWriter, r *http.Request) {
	inv, err := h.st.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.storeError(w, r.PathValue("id"), err)
		return
	}
	if inv.Attempts == nil {
		inv.Attempts = []fnhost.Attempt{}
	}
	writeJSON(w, http.StatusOK, inv)
}

func (h *Host) retry(w http.ResponseWriter, r *http.Request) {
	inv, err := h.rt.Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		h.storeError(w, r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

func (h *Host) cancel(w http.ResponseWriter, r *http.Request) {
	inv, err := h.rt.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		h.storeError(w, r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

func (h *Host) storeError(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "invocation_not_found", "no invocation %q", id)
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "%v", err)
	default:
		h.log.Error("store", "err", err)
		writeError(w, http.StatusInternalServerError, "store_error", "%v", err)
	}
}

// ServerView is one fnhost instance as the API shows it.
type ServerView struct {
	ID        string    `json:"id"`
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Heartbeat time.Time `json:"heartbeat_at"`
	Workers   int       `json:"workers"`
	InFlight  int       `json:"in_flight"`
	// Self marks the instance that answers; Leader the one that runs maintenance.
	Self   bool `json:"self"`
	Leader bool `json:"leader"`
	// Alive is false for an instance whose heartbeat is older than a lease: its
	// invocations are rescued by the others within rescue_within.
	Alive bool `json:"alive"`
}

// serverViews lists the instances working on the store: those whose heartbeat is
// recent, and this one (with its own figures, fresher than its last heartbeat).
func (h *Host) serverViews(ctx context.Context) ([]ServerView, error) {
	now := time.Now().UTC()
	lease := h.rt.Lease()
	list, err := h.st.Servers(ctx, now.Add(-10*lease))
	if err != nil {
		return nil, err
	}
	items := []ServerView{}
	self := false
	for _, s := range list {
		v := ServerView{ID: s.ID, Hostname: s.Hostname, PID: s.PID, Version: s.Version, StartedAt: s.StartedAt,
			Heartbeat: s.HeartbeatAt, Workers: s.Workers, InFlight: s.InFlight,
			Self: s.ID == h.rt.Owner(), Leader: s.ID == h.rt.Leader(), Alive: !s.HeartbeatAt.Before(now.Add(-lease))}
		if v.Self {
			self, v.InFlight, v.Heartbeat, v.Alive = true, h.rt.InFlight(), now, true
		}
		items = append(items, v)
	}
	if !self {
		host, _ := os.Hostname()
		items = append(items, ServerView{ID: h.rt.Owner(), Hostname: host, PID: os.Getpid(), Version: fnhost.Version,
			StartedAt: h.started.UTC(), Heartbeat: now, Workers: h.m.Host.Workers, InFlight: h.rt.InFlight(),
			Self: true, Leader: h.rt.IsLeader(), Alive: true})
	}
	return items, nil
}

// servers lists the instances working on the store, with the lease and the bound on
// how long a dead instance's invocations wait before another one rescues them.
func (h *Host) servers(w http.ResponseWriter, r *http.Request) {
	items, err := h.serverViews(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "list servers: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"items": items, "next_cursor": "",
		"lease": h.rt.Lease().String(), "rescue_within": h.rt.RescueWithin().String(),
	})
}

// QueueView is a queue as the API shows it.
type QueueView struct {
	Name      string   `json:"name"`
	Consumers []string `json:"consumers"`
}

func (h *Host) listQueues(w http.ResponseWriter, r *http.Request) {
	items := []QueueView{}
	for _, name := range slices.Sorted(maps.Keys(h.rt.Queues())) {
		items = append(items, QueueView{Name: name, Consumers: h.rt.Queues()[name]})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": ""})
}

// publish accepts one message, {"data": …, "delay": "30s", "not_before": RFC3339,
// "dedup_key": "…", "priority": N}, or a batch, {"messages": [{…}, …]}. It answers 202
// once every message is persisted, with the invocations each became.
func (h *Host) publish(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := h.rt.Queues()[name]; !ok {
		writeError(w, http.StatusNotFound, "queue_not_found", "no function consumes queue %q (bind one with a queue trigger)", name)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		fnhost.Message
		Messages []fnhost.Message `json:"messages"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_message", `the body must be a message {"data": …} or a batch {"messages": […]}: %v`, err)
		return
	}
	msgs := req.Messages
	if len(msgs) == 0 {
		if req.Data == nil {
			writeError(w, http.StatusBadRequest, "bad_message", `the message has no "data" (send {"data": null} for an empty one)`)
			return
		}
		msgs = []fnhost.Message{req.Message}
	}
	for i := range msgs {
		if msgs[i].Queue != "" && msgs[i].Queue != name {
			writeError(w, http.StatusBadRequest, "bad_message", "message %d names queue %q but was sent to %q", i, msgs[i].Queue, name)
			return
		}
		msgs[i].Queue = name
	}
	res, err := h.rt.Publish(r.Context(), msgs...)
	if err != nil {
		var bad *runtime.BadMessageError
		if errors.As(err, &bad) {
			writeError(w, http.StatusBadRequest, "bad_message", "%v", err)
			return
		}
		h.submitError(w, err)
		return
	}
	items := make([]map[string]any, len(res))
	for i, inv := range res {
		items[i] = map[string]any{"invocations": inv}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"queue": name, "items": items})
}
