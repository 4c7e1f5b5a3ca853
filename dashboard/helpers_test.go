package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/host"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
)

// manifestSrc is the manifest of the tests' host; {{DIR}} is its directory and
// {{HOST}} more host settings.
const manifestSrc = `version: 1
host:
  listen: 127.0.0.1:0
  storage: {{STORAGE}}
  workers: 4
  shutdown_timeout: 10m
{{HOST}}
functions:
  ok:
    description: Answers with its data.
    handler: {builtin: echo}
  toggle:
    description: Fails until the test lets it succeed.
    handler: {builtin: toggle}
    retry: {max_attempts: 2, initial_interval: 10ms}
  orders:
    handler: {builtin: echo}
    triggers:
      - queue: {name: orders}
  tick:
    handler: {builtin: noop}
    triggers:
      - cron: {schedule: "@every 1h"}
`

// bundle is a running host with its dashboard, and a browser-like client: it keeps
// cookies and does not follow redirects.
type bundle struct {
	t      *testing.T
	h      *host.Host
	base   string
	client *http.Client
	// pass makes the toggle function succeed.
	pass *atomic.Bool
	// stop stops the host and waits for Run to return.
	stop func()
}

// setup starts a host on a new SQLite store with hostSettings (YAML lines under host:,
// indented two spaces) and stops it when the test ends.
func setup(t *testing.T, hostSettings string) *bundle {
	t.Helper()
	return setupOn(t, "", hostSettings)
}

// setupOn is setup on the store at storage (empty: a new SQLite database).
func setupOn(t *testing.T, storage, hostSettings string) *bundle {
	t.Helper()
	dir := t.TempDir()
	if storage == "" {
		storage = "sqlite:" + filepath.Join(dir, "fnhost.db")
	}
	src := strings.NewReplacer("{{STORAGE}}", storage, "{{HOST}}", hostSettings).Replace(manifestSrc)
	if err := os.WriteFile(filepath.Join(dir, "functions.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(filepath.Join(dir, "functions.yaml"))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	pass := new(atomic.Bool)
	toggle := func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		if pass.Load() {
			return fnhost.Result{Output: []byte(`"passed"`)}, nil
		}
		fnhost.Logf(ctx, "toggle: not yet")
		return fnhost.Result{}, errors.New("toggle is off")
	}
	h, err := host.New(m, host.WithFunction("toggle", toggle), host.WithLogOutput(io.Discard))
	if err != nil {
		t.Fatalf("host.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	jar, _ := cookiejar.New(nil)
	b := &bundle{t: t, h: h, base: "http://" + h.Addr(), pass: pass, stop: stop, client: &http.Client{
		Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	return b
}

// page is an answer of the dashboard.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *bundle) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read: %v", req.Method, req.URL, err)
	}
	return page{res.StatusCode, res.Header, string(body)}
}

// get fetches path (under the host) with the client's cookies.
func (b *bundle) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// mustGet fetches path and expects 200.
func (b *bundle) mustGet(path string) page {
	b.t.Helper()
	p := b.get(path)
	if p.status != http.StatusOK {
		b.t.Fatalf("GET %s: status %d\n%s", path, p.status, p.body)
	}
	return p
}

// post submits a form to path with the given fields; the CSRF token comes from the
// page from (as a browser's form would carry it) unless fields sets csrf.
func (b *bundle) post(from, path string, fields url.Values, header http.Header) page {
	b.t.Helper()
	if fields == nil {
		fields = url.Values{}
	}
	if !fields.Has("csrf") {
		fields.Set("csrf", csrfOf(b.t, b.mustGet(from).body))
	}
	req, err := http.NewRequest("POST", b.base+path, strings.NewReader(fields.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	for k, v := range header {
		req.Header[k] = v
	}
	return b.do(req)
}

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	rowID     = regexp.MustCompile(`<tr data-href="/dashboard/invocations/([0-9A-Z]{26})"`)
	olderLink = regexp.MustCompile(`<a href="([^"]+)" rel="next" data-next>`)
)

// csrfOf returns the CSRF token of the forms of a page.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", body)
	}
	return m[1]
}

// invoke submits an invocation of function through the host's API and returns its id.
func (b *bundle) invoke(function, data, query string) string {
	b.t.Helper()
	res, err := http.Post(b.base+"/api/v1/functions/"+function+"/invocations"+query, "application/json", strings.NewReader(data))
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.ID == "" {
		b.t.Fatalf("invoke %s: status %d, %v", function, res.StatusCode, err)
	}
	return out.ID
}

// waitState polls the store until invocation id is in state want.
func (b *bundle) waitState(id string, want fnhost.State) *fnhost.Invocation {
	b.t.Helper()
	var inv *fnhost.Invocation
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var err error
		inv, err = b.h.Store().Get(context.Background(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			b.t.Fatalf("Get %s: %v", id, err)
		}
		if inv != nil && inv.State == want {
			return inv
		}
	}
	b.t.Fatalf("invocation %s did not become %s (last: %+v)", id, want, inv)
	return nil
}

// wantContains fails unless body holds every one of wants.
func wantContains(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not contain %q", what, w)
		}
	}
	if t.Failed() {
		t.Logf("%s:\n%s", what, body)
	}
}

func wantStatus(t *testing.T, what string, p page, want int) {
	t.Helper()
	if p.status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, p.status, want, p.body)
	}
}

// failed makes n invocations of toggle that end failed and returns their ids.
func (b *bundle) failed(n int) []string {
	b.t.Helper()
	var ids []string
	for range n {
		ids = append(ids, b.invoke("toggle", `{}`, ""))
	}
	for _, id := range ids {
		b.waitState(id, fnhost.StateFailed)
	}
	return ids
}
