package http_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
	_ "github.com/fnhost/fnhost/triggers/http"
)

// fn is a function of a test host: a Go handler and its HTTP routes.
type fn struct {
	name     string
	handler  fnhost.HandlerFunc
	timeout  time.Duration
	attempts int
	routes   []manifest.HTTPTrigger
}

// bundle is a real runtime on a real SQLite store, with HTTP triggers mounted on a mux
// served by an httptest server.
type bundle struct {
	t   *testing.T
	rt  *runtime.Runtime
	st  store.Store
	srv *httptest.Server
	reg *prometheus.Registry
}

func echo(_ context.Context, ev fnhost.Event) (fnhost.Result, error) {
	return fnhost.Result{Output: ev.Data}, nil
}

// returns makes a handler whose output is out.
func returns(out string) fnhost.HandlerFunc {
	return func(context.Context, fnhost.Event) (fnhost.Result, error) {
		return fnhost.Result{Output: []byte(out)}, nil
	}
}

func setup(t *testing.T, hostLimit int64, fns ...fn) *bundle {
	t.Helper()
	st := runtimetest.OpenStore(t, sqlite.Options{})
	m := &manifest.Manifest{Version: 1, Functions: map[string]*manifest.Function{}}
	m.Host.MaxBodyBytes = hostLimit
	var rfns []*runtime.Function
	for _, f := range fns {
		if f.attempts == 0 {
			f.attempts = 1
		}
		if f.timeout == 0 {
			f.timeout = 10 * time.Second
		}
		retry := manifest.Retry{MaxAttempts: f.attempts, Backoff: "fixed", InitialInterval: 10 * time.Millisecond}
		mf := &manifest.Function{Name: f.name, Timeout: f.timeout, Retry: retry}
		for i := range f.routes {
			mf.Triggers = append(mf.Triggers, manifest.Trigger{Kind: "http", HTTP: &f.routes[i]})
		}
		m.Functions[f.name] = mf
		m.Order = append(m.Order, f.name)
		rfns = append(rfns, &runtime.Function{Name: f.name, Handler: f.handler, Timeout: f.timeout, Retry: retry})
	}
	rt := runtimetest.Start(t, runtime.Config{Store: st, Functions: rfns})
	b := &bundle{t: t, rt: rt, st: st, reg: prometheus.NewRegistry()}
	mux := http.NewServeMux()
	for _, name := range m.Order {
		for _, tr := range m.Functions[name].Triggers {
			if _, err := triggers.New(triggers.Env{
				Function: m.Functions[name], Trigger: tr, Manifest: m, Submitter: rt, Store: st,
				Router: mux, Registerer: b.reg,
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

// answer is an HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", a.status, a.body)
	}
	return m
}

// errCode returns the code of a JSON error answer.
func (a answer) errCode(t *testing.T) string {
	t.Helper()
	e, _ := a.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (b *bundle) do(method, path string, body io.Reader, header map[string]string) answer {
	b.t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (b *bundle) post(path, body string, header map[string]string) answer {
	b.t.Helper()
	return b.do("POST", path, strings.NewReader(body), header)
}

// invocations lists the persisted invocations of a function.
func (b *bundle) invocations(function string) []*fnhost.Invocation {
	b.t.Helper()
	page, err := b.st.List(context.Background(), store.Filter{Function: function, Limit: 1000})
	if err != nil {
		b.t.Fatal(err)
	}
	return page.Items
}

// event reads the event and its data of a persisted invocation.
func (b *bundle) event(id string) (fnhost.Event, map[string]any) {
	b.t.Helper()
	inv, err := b.st.Get(context.Background(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	var ev fnhost.Event
	if err := json.Unmarshal(inv.Event, &ev); err != nil {
		b.t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		b.t.Fatalf("event data %s: %v", ev.Data, err)
	}
	if inv.Trigger != "http" {
		b.t.Errorf("trigger %q, want http", inv.Trigger)
	}
	return ev, data
}

// refused reads fnhost_http_trigger_refused_total for a function and reason; -1 when
// the series does not exist.
func (b *bundle) refused(function, reason string) float64 {
	b.t.Helper()
	fams, err := b.reg.Gather()
	if err != nil {
		b.t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "fnhost_http_trigger_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["function"] == function && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func jsonEqual(t *testing.T, got any, want string) bool {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestAsyncPersistsTheRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, fn{name: "hook", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/hooks/{repo}", Mode: "async"}}})
	a := b.post("/hooks/fnhost?x=1&x=2&y=z", `{"action":"opened","n":1.50}`, map[string]string{
		"Content-Type": "application/json", "X-Custom": "yes", "Authorization": "Bearer secret-token",
		"Cookie": "session=secret", "Proxy-Authorization": "Basic c2VjcmV0",
	})
	if a.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	got := a.json(t)
	id, _ := got["id"].(string)
	if id == "" || got["function"] != "hook" || got["state"] != "pending" || got["status_url"] != "/api/v1/invocations/"+id || got["duplicate"] != false {
		t.Fatalf("answer %s", a.body)
	}
	if loc := a.header.Get("Location"); loc != "/api/v1/invocations/"+id {
		t.Errorf("Location %q", loc)
	}
	ev, data := b.event(id)
	if ev.Source != "fnhost/http/hook" || ev.Type != "fnhost.http.request" || ev.Subject != "/hooks/fnhost" || ev.Validate() != nil {
		t.Errorf("event %+v", ev)
	}
	if data["method"] != "POST" || data["path"] != "/hooks/fnhost" || !strings.HasPrefix(data["remote_addr"].(string), "127.0.0.1:") {
		t.Errorf("data %v", data)
	}
	if !jsonEqual(t, data["params"], `{"repo":"fnhost"}`) || !jsonEqual(t, data["query"], `{"x":["1","2"],"y":["z"]}`) {
		t.Errorf("params %v query %v", data["params"], data["query"])
	}
	if !jsonEqual(t, data["body"], `{"action":"opened","n":1.5}`) {
		t.Errorf("body %v", data["body"])
	}
	headers, _ := data["headers"].(map[string]any)
	if !jsonEqual(t, headers["X-Custom"], `["yes"]`) {
		t.Errorf("headers %v", headers)
	}
	for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if _, ok := headers[h]; ok {
			t.Errorf("header %s reached the event", h)
		}
	}
	raw, _ := b.st.Get(context.Background(), id)
	if strings.Contains(string(raw.Event), "secret") {
		t.Errorf("a secret reached the event: %s", raw.Event)
	}
	if inv, err := b.rt.Wait(context.Background(), id); err != nil || inv.State != fnhost.StateSucceeded {
		t.Fatalf("invocation %v, %v", inv, err)
	}
}

func TestBodyEncodings(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, fn{name: "hook", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/in"}}})
	for _, c := range []struct {
		name, contentType, body string
		want                    string // JSON of data.body; empty means body_base64
	}{
		{"json", "application/json; charset=utf-8", `{"a":[1,2]}`, `{"a":[1,2]}`},
		{"no content type", "", `[1,"two"]`, `[1,"two"]`},
		{"json suffix", "application/cloudevents+json", `{"b":true}`, `{"b":true}`},
		{"curl -d", "application/x-www-form-urlencoded", `{"name":"Ada"}`, `{"name":"Ada"}`},
		{"form", "application/x-www-form-urlencoded", `a=1&b=2`, `"a=1\u0026b=2"`},
		{"form value that parses as JSON", "application/x-www-form-urlencoded", `true`, `"true"`},
		{"text that is JSON", "text/plain", `{"a":1}`, `"{\"a\":1}"`},
		{"invalid JSON", "application/json", `{"a":`, `"{\"a\":"`},
		{"empty", "application/json", ``, `null`},
		{"binary", "application/octet-stream", "\xff\xfe\x00\x01", ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{}
			if c.contentType != "" {
				h["Content-Type"] = c.contentType
			}
			req, _ := http.NewRequest("POST", b.srv.URL+"/in", strings.NewReader(c.body))
			for k, v := range h {
				req.Header.Set(k, v)
			}
			if c.contentType == "" {
				req.Header["Content-Type"] = nil
			}
			resp, err := b.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var acc struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&acc)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 202 {
				t.Fatalf("status %d, %v", resp.StatusCode, err)
			}
			_, data := b.event(acc.ID)
			if c.want == "" {
				if _, ok := data["body"]; ok {
					t.Errorf("binary body has body %v", data["body"])
				}
				if data["body_base64"] != base64.StdEncoding.EncodeToString([]byte(c.body)) {
					t.Errorf("body_base64 %v", data["body_base64"])
				}
				return
			}
			if _, ok := data["body_base64"]; ok {
				t.Errorf("text body has body_base64")
			}
			if body, ok := data["body"]; !ok || !jsonEqual(t, body, c.want) {
				t.Errorf("body %#v, want %s", data["body"], c.want)
			}
		})
	}
}

func TestHMACSignature(t *testing.T) {
	t.Parallel()
	const secret = "It's a Secret to Everybody"
	b := setup(t, 0,
		fn{name: "github", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/hooks/github",
			Auth: manifest.HTTPAuth{HMAC: &manifest.HMACAuth{Secret: secret, Header: "X-Hub-Signature-256"}}}}},
		fn{name: "custom", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/hooks/custom",
			Auth: manifest.HTTPAuth{HMAC: &manifest.HMACAuth{Secret: secret, Header: "x-signature"}}}}},
	)
	// The example of GitHub's documentation on validating webhook deliveries.
	const body = "Hello, World!"
	const githubSig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if sign(secret, body) != githubSig {
		t.Fatalf("the test's signer is wrong")
	}
	for _, c := range []struct {
		name, path, header, value string
		want                      int
	}{
		{"github", "/hooks/github", "X-Hub-Signature-256", "sha256=" + githubSig, 202},
		{"bare hex", "/hooks/github", "X-Hub-Signature-256", githubSig, 202},
		{"upper case", "/hooks/github", "X-Hub-Signature-256", "SHA256=" + strings.ToUpper(githubSig), 202},
		{"custom header", "/hooks/custom", "X-Signature", "sha256=" + githubSig, 202},
		{"missing", "/hooks/github", "", "", 401},
		{"forged", "/hooks/github", "X-Hub-Signature-256", "sha256=" + sign("guess", body), 401},
		{"other body", "/hooks/github", "X-Hub-Signature-256", "sha256=" + sign(secret, body+" "), 401},
		{"sha1", "/hooks/github", "X-Hub-Signature-256", "sha1=" + githubSig[:40], 401},
		{"not hex", "/hooks/github", "X-Hub-Signature-256", "sha256=" + strings.Repeat("zz", 32), 401},
		{"truncated", "/hooks/github", "X-Hub-Signature-256", "sha256=" + githubSig[:62], 401},
		{"wrong header", "/hooks/custom", "X-Hub-Signature-256", "sha256=" + githubSig, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			fnName := strings.TrimPrefix(c.path, "/hooks/")
			before := len(b.invocations(fnName))
			h := map[string]string{}
			if c.header != "" {
				h[c.header] = c.value
			}
			a := b.post(c.path, body, h)
			if a.status != c.want {
				t.Fatalf("status %d, want %d: %s", a.status, c.want, a.body)
			}
			after := len(b.invocations(fnName))
			if c.want != 202 {
				if after != before {
					t.Errorf("a refused request was persisted")
				}
				if a.errCode(t) != "bad_signature" || strings.Contains(string(a.body), secret) {
					t.Errorf("answer %s", a.body)
				}
				wantHeader := map[string]string{"github": "X-Hub-Signature-256", "custom": "X-Signature"}[fnName]
				if !strings.Contains(string(a.body), wantHeader) {
					t.Errorf("the message does not name %s: %s", wantHeader, a.body)
				}
				return
			}
			if after != before+1 {
				t.Errorf("%d invocations, want %d", after, before+1)
			}
			_, data := b.event(a.json(t)["id"].(string))
			headers := data["headers"].(map[string]any)
			if _, ok := headers[http.CanonicalHeaderKey(c.header)]; ok {
				t.Errorf("the signature header reached the event")
			}
			if data["body"] != body {
				t.Errorf("body %v", data["body"])
			}
		})
	}
	if got := b.refused("github", "missing_signature"); got != 1 {
		t.Errorf("missing_signature refusals %v, want 1", got)
	}
	if got := b.refused("github", "bad_signature"); got != 5 {
		t.Errorf("bad_signature refusals %v, want 5", got)
	}
	if got := b.refused("custom", "missing_signature"); got != 1 {
		t.Errorf("custom missing_signature refusals %v, want 1", got)
	}
}

func TestKeyAuth(t *testing.T) {
	t.Parallel()
	const key = "k3y-of-the-route"
	b := setup(t, 0, fn{name: "keyed", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/hooks/keyed", Auth: manifest.HTTPAuth{Key: key}}}})
	a := b.post("/hooks/keyed?x=1", `{}`, map[string]string{"X-Fnhost-Key": key})
	if a.status != 202 {
		t.Fatalf("header key: status %d %s", a.status, a.body)
	}
	_, data := b.event(a.json(t)["id"].(string))
	if _, ok := data["headers"].(map[string]any)["X-Fnhost-Key"]; ok {
		t.Errorf("the key header reached the event")
	}
	a = b.post("/hooks/keyed?code="+key+"&x=1", `{}`, nil)
	if a.status != 202 {
		t.Fatalf("query key: status %d %s", a.status, a.body)
	}
	_, data = b.event(a.json(t)["id"].(string))
	if !jsonEqual(t, data["query"], `{"x":["1"]}`) {
		t.Errorf("query %v: code must not reach the event", data["query"])
	}
	for _, c := range []struct {
		name   string
		path   string
		header map[string]string
		reason string
	}{
		{"none", "/hooks/keyed", nil, "missing_key"},
		{"wrong header", "/hooks/keyed", map[string]string{"X-Fnhost-Key": key + "x"}, "bad_key"},
		{"wrong code", "/hooks/keyed?code=nope", nil, "bad_key"},
		{"prefix", "/hooks/keyed", map[string]string{"X-Fnhost-Key": key[:4]}, "bad_key"},
		{"bearer is not the key", "/hooks/keyed", map[string]string{"Authorization": "Bearer " + key}, "missing_key"},
	} {
		a := b.post(c.path, `{}`, c.header)
		if a.status != 401 || a.errCode(t) != "unauthorized" || !strings.Contains(string(a.body), "X-Fnhost-Key") || strings.Contains(string(a.body), key) {
			t.Errorf("%s: status %d %s", c.name, a.status, a.body)
		}
	}
	if n := len(b.invocations("keyed")); n != 2 {
		t.Errorf("%d invocations, want the 2 with the key", n)
	}
	if b.refused("keyed", "missing_key") != 2 || b.refused("keyed", "bad_key") != 3 {
		t.Errorf("refusals missing %v bad %v", b.refused("keyed", "missing_key"), b.refused("keyed", "bad_key"))
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, 20,
		fn{name: "small", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/small", MaxBodyBytes: 10}}},
		fn{name: "host", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/host"}}},
		fn{name: "signed", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/signed", MaxBodyBytes: 10,
			Auth: manifest.HTTPAuth{HMAC: &manifest.HMACAuth{Secret: "s"}}}}},
	)
	if a := b.post("/small", `"12345678"`, nil); a.status != 202 {
		t.Fatalf("10 bytes: status %d %s", a.status, a.body)
	}
	if a := b.post("/small", `"123456789"`, nil); a.status != 413 || a.errCode(t) != "body_too_large" {
		t.Fatalf("11 bytes: status %d %s", a.status, a.body)
	}
	// Without a Content-Length the limit holds while reading.
	if a := b.do("POST", "/small", io.MultiReader(strings.NewReader(`"123456`), strings.NewReader(`789"`)), nil); a.status != 413 {
		t.Fatalf("11 bytes chunked: status %d %s", a.status, a.body)
	}
	if a := b.post("/host", strings.Repeat("x", 20), nil); a.status != 202 {
		t.Fatalf("host limit, 20 bytes: status %d %s", a.status, a.body)
	}
	if a := b.post("/host", strings.Repeat("x", 21), nil); a.status != 413 {
		t.Fatalf("host limit, 21 bytes: status %d %s", a.status, a.body)
	}
	big := strings.Repeat("y", 11)
	if a := b.post("/signed", big, map[string]string{"X-Hub-Signature-256": "sha256=" + sign("s", big)}); a.status != 413 {
		t.Fatalf("signed, too large: status %d %s", a.status, a.body)
	}
	if n := len(b.invocations("small")); n != 1 {
		t.Errorf("small: %d invocations, want 1", n)
	}
	if n := len(b.invocations("host")); n != 1 {
		t.Errorf("host: %d invocations, want 1", n)
	}
	if n := len(b.invocations("signed")); n != 0 {
		t.Errorf("signed: %d invocations, want 0", n)
	}
	if got := b.refused("small", "body_too_large"); got != 2 {
		t.Errorf("body_too_large refusals %v, want 2", got)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, 0,
		fn{name: "create", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/items/{id}", Methods: []string{"POST"}}}},
		fn{name: "replace", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/items/{key}", Methods: []string{"PUT", "PATCH"}}}},
		fn{name: "files", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/files/{rest...}", Methods: []string{"GET"}}}},
		fn{name: "exact", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/exact/"}}},
	)
	a := b.do("GET", "/items/7", nil, nil)
	if a.status != 405 || a.errCode(t) != "method_not_allowed" {
		t.Fatalf("GET /items/7: status %d %s", a.status, a.body)
	}
	if allow := a.header.Get("Allow"); allow != "PATCH, POST, PUT" {
		t.Errorf("Allow %q", allow)
	}
	if a := b.do("DELETE", "/files/a", nil, nil); a.status != 405 || a.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE /files/a: status %d Allow %q %s", a.status, a.header.Get("Allow"), a.body)
	}
	a = b.do("PUT", "/items/7", strings.NewReader(`{}`), nil)
	if a.status != 202 || a.json(t)["function"] != "replace" {
		t.Fatalf("PUT: %d %s", a.status, a.body)
	}
	_, data := b.event(a.json(t)["id"].(string))
	if !jsonEqual(t, data["params"], `{"key":"7"}`) || data["method"] != "PUT" {
		t.Errorf("data %v", data)
	}
	a = b.do("GET", "/files/a/b%20c/d.txt?v=1", nil, nil)
	if a.status != 202 {
		t.Fatalf("GET files: %d %s", a.status, a.body)
	}
	_, data = b.event(a.json(t)["id"].(string))
	if !jsonEqual(t, data["params"], `{"rest":"a/b c/d.txt"}`) || data["body"] != nil {
		t.Errorf("data %v", data)
	}
	if a := b.post("/exact/", ``, nil); a.status != 202 {
		t.Errorf("POST /exact/: %d", a.status)
	}
	if a := b.post("/exact/more", ``, nil); a.status != 404 {
		t.Errorf("POST /exact/more: %d, want 404: a path ending in / is not a prefix", a.status)
	}
}

func TestConflictingRoutesAreAnError(t *testing.T) {
	t.Parallel()
	st := runtimetest.OpenStore(t, sqlite.Options{})
	rt, err := runtime.New(runtime.Config{Store: st, Functions: []*runtime.Function{{Name: "a", Handler: fnhost.HandlerFunc(echo)}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f := &manifest.Function{Name: "a"}
	build := func(path string) error {
		_, err := triggers.New(triggers.Env{Function: f, Trigger: manifest.Trigger{Kind: "http", HTTP: &manifest.HTTPTrigger{Path: path}}, Submitter: rt, Router: mux})
		return err
	}
	if err := build("/a/{x}/c"); err != nil {
		t.Fatal(err)
	}
	err = build("/a/b/{y}")
	if err == nil || !strings.Contains(err.Error(), `function "a"`) || !strings.Contains(err.Error(), "POST /a/b/{y}") {
		t.Fatalf("err %v, want a conflict naming the function and the route", err)
	}
}

func TestSyncAnswers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	blocked := func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		<-release
		return fnhost.Result{}, nil
	}
	route := func(p string) []manifest.HTTPTrigger {
		return []manifest.HTTPTrigger{{Path: p, Mode: "sync", Methods: []string{"POST", "GET"}}}
	}
	b := setup(t, 0,
		fn{name: "echo", handler: echo, routes: route("/echo")},
		fn{name: "made", handler: returns(`{"status":201,"headers":{"X-A":"b","X-Many":["1",2],"Upgrade":"h2c","Content-Length":"999"},"body":"made"}`), routes: route("/made")},
		fn{name: "object", handler: returns(`{"status":200,"body":{"ok":true}}`), routes: route("/object")},
		fn{name: "typed", handler: returns(`{"headers":{"content-type":"application/problem+json"},"body":{"title":"x"},"status":422}`), routes: route("/typed")},
		fn{name: "text", handler: returns(`hello, world`), routes: route("/text")},
		fn{name: "plain", handler: returns(`{"status":"ok","count":2}`), routes: route("/plain")},
		fn{name: "nobody", handler: returns(`{"status":204}`), routes: route("/nobody")},
		fn{name: "badstatus", handler: returns(`{"status":99,"body":"x"}`), routes: route("/badstatus")},
		fn{name: "badheader", handler: returns(`{"headers":{"X-A":"b\r\nSet-Cookie: x=y"}}`), routes: route("/badheader")},
		fn{name: "fail", attempts: 2, handler: func(context.Context, fnhost.Event) (fnhost.Result, error) {
			return fnhost.Result{}, fnhost.Permanent(io.ErrUnexpectedEOF)
		}, routes: route("/fail")},
		fn{name: "slow", handler: blocked, timeout: 100 * time.Millisecond, routes: route("/slow")},
	)
	t.Cleanup(func() { close(release) })

	a := b.post("/echo?q=1", `{"name":"Ada"}`, map[string]string{"Content-Type": "application/json"})
	if a.status != 200 || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("echo: %d %v %s", a.status, a.header, a.body)
	}
	echoed := a.json(t)
	if !jsonEqual(t, echoed["body"], `{"name":"Ada"}`) || echoed["method"] != "POST" || !jsonEqual(t, echoed["query"], `{"q":["1"]}`) {
		t.Errorf("echo answered %s", a.body)
	}
	id := a.header.Get("X-Fnhost-Invocation-Id")
	if inv, err := b.st.Get(context.Background(), id); err != nil || inv.State != fnhost.StateSucceeded || inv.Trigger != "http" {
		t.Errorf("invocation %s: %v %v", id, inv, err)
	}

	a = b.post("/made", ``, nil)
	if a.status != 201 || string(a.body) != "made" || a.header.Get("X-A") != "b" || strings.Join(a.header.Values("X-Many"), ",") != "1,2" ||
		a.header.Get("Content-Type") != "text/plain; charset=utf-8" || a.header.Get("Upgrade") != "" {
		t.Errorf("made: %d %v %q", a.status, a.header, a.body)
	}
	a = b.post("/object", ``, nil)
	if a.status != 200 || a.header.Get("Content-Type") != "application/json" || !jsonEqual(t, a.json(t), `{"ok":true}`) {
		t.Errorf("object: %d %v %q", a.status, a.header, a.body)
	}
	a = b.post("/typed", ``, nil)
	if a.status != 422 || a.header.Get("Content-Type") != "application/problem+json" || !jsonEqual(t, a.json(t), `{"title":"x"}`) {
		t.Errorf("typed: %d %v %q", a.status, a.header, a.body)
	}
	a = b.post("/text", ``, nil)
	if a.status != 200 || string(a.body) != "hello, world" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Errorf("text: %d %v %q", a.status, a.header, a.body)
	}
	a = b.post("/plain", ``, nil)
	if a.status != 200 || !jsonEqual(t, a.json(t), `{"status":"ok","count":2}`) {
		t.Errorf("plain: %d %q", a.status, a.body)
	}
	a = b.post("/nobody", ``, nil)
	if a.status != 204 || len(a.body) != 0 {
		t.Errorf("nobody: %d %q", a.status, a.body)
	}
	if a := b.do("HEAD", "/made", nil, nil); a.status != 201 || len(a.body) != 0 {
		t.Errorf("HEAD made: %d %q", a.status, a.body)
	}
	for _, p := range []string{"/badstatus", "/badheader"} {
		a = b.post(p, ``, nil)
		if a.status != 502 || a.errCode(t) != "bad_response" || a.header.Get("Set-Cookie") != "" {
			t.Errorf("%s: %d %v %s", p, a.status, a.header, a.body)
		}
	}

	a = b.post("/fail", ``, nil)
	if a.status != 502 || a.errCode(t) != "invocation_failed" {
		t.Fatalf("fail: %d %s", a.status, a.body)
	}
	e := a.json(t)["error"].(map[string]any)
	fid, _ := e["invocation_id"].(string)
	if fid == "" || e["status_url"] != "/api/v1/invocations/"+fid || !strings.Contains(e["message"].(string), "unexpected EOF") {
		t.Errorf("fail: %s", a.body)
	}
	if inv, err := b.st.Get(context.Background(), fid); err != nil || inv.State != fnhost.StateFailed {
		t.Errorf("failed invocation %v %v", inv, err)
	}

	a = b.post("/slow", ``, nil)
	if a.status != 202 {
		t.Fatalf("slow: %d %s", a.status, a.body)
	}
	got := a.json(t)
	sid, _ := got["id"].(string)
	if sid == "" || got["status_url"] != "/api/v1/invocations/"+sid || got["state"] != "running" || a.header.Get("Location") != "/api/v1/invocations/"+sid {
		t.Errorf("slow: %s", a.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, 0,
		fn{name: "async", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/async"}}},
		fn{name: "sync", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/sync", Mode: "sync"}}},
	)
	h := map[string]string{"Idempotency-Key": "delivery-1"}
	first := b.post("/async", `{"n":1}`, h)
	second := b.post("/async", `{"n":1}`, h)
	other := b.post("/async", `{"n":1}`, map[string]string{"Idempotency-Key": "delivery-2"})
	if first.status != 202 || second.status != 202 || other.status != 202 {
		t.Fatalf("statuses %d %d %d", first.status, second.status, other.status)
	}
	f, s := first.json(t), second.json(t)
	if f["id"] != s["id"] || f["duplicate"] != false || s["duplicate"] != true || s["state"] == nil {
		t.Errorf("first %s second %s", first.body, second.body)
	}
	if other.json(t)["id"] == f["id"] {
		t.Errorf("another key got the same invocation")
	}
	if n := len(b.invocations("async")); n != 2 {
		t.Errorf("%d invocations, want 2", n)
	}

	first = b.post("/sync", `{"n":2}`, h)
	second = b.post("/sync", `{"n":2}`, h)
	if first.status != 200 || second.status != 200 {
		t.Fatalf("sync statuses %d %d", first.status, second.status)
	}
	id := first.header.Get("X-Fnhost-Invocation-Id")
	if id == "" || second.header.Get("X-Fnhost-Invocation-Id") != id || second.header.Get("X-Fnhost-Duplicate") != "true" || first.header.Get("X-Fnhost-Duplicate") != "" {
		t.Errorf("sync: first %v second %v", first.header, second.header)
	}
	if string(first.body) != string(second.body) {
		t.Errorf("a repeated delivery answered differently: %s vs %s", first.body, second.body)
	}
	if n := len(b.invocations("sync")); n != 1 {
		t.Errorf("%d sync invocations, want 1", n)
	}
}

func TestRefusalCounterIsSharedAcrossTriggers(t *testing.T) {
	t.Parallel()
	b := setup(t, 0,
		fn{name: "a", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/a", Auth: manifest.HTTPAuth{Key: "ka"}}, {Path: "/a2", Auth: manifest.HTTPAuth{Key: "ka"}}}},
		fn{name: "b", handler: echo, routes: []manifest.HTTPTrigger{{Path: "/b", Auth: manifest.HTTPAuth{Key: "kb"}}}},
	)
	if got := b.refused("b", "bad_key"); got != 0 {
		t.Fatalf("before any refusal: %v, want a series at 0", got)
	}
	b.post("/a", ``, map[string]string{"X-Fnhost-Key": "kb"})
	b.post("/a2", ``, map[string]string{"X-Fnhost-Key": "kb"})
	b.post("/b", ``, map[string]string{"X-Fnhost-Key": "ka"})
	if b.refused("a", "bad_key") != 2 || b.refused("b", "bad_key") != 1 {
		t.Errorf("a %v b %v", b.refused("a", "bad_key"), b.refused("b", "bad_key"))
	}
}
