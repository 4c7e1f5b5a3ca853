package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

func TestPages(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	failedID := b.failed(1)[0]
	okID := b.invoke("ok", `{"hello": "wörld <b>"}`, "")
	b.waitState(okID, fnhost.StateSucceeded)
	if res, err := http.Post(b.base+"/api/v1/queues/orders/messages", "application/json", strings.NewReader(`{"data": 1, "delay": "1h"}`)); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}

	p := b.mustGet("/dashboard/")
	wantContains(t, "overview", p.body, "<h1>Overview</h1>", `data-count="failed">1<`, `data-count="scheduled">1<`,
		"Throughput, last hour", failedID, "1 alive", `data-live-src="/dashboard/live"`)
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if ct := p.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}

	p = b.mustGet("/dashboard/invocations")
	wantContains(t, "invocations", p.body, failedID, okID, `<option>toggle</option>`)
	p = b.mustGet("/dashboard/invocations?state=failed")
	wantContains(t, "failed filter", p.body, failedID)
	if strings.Contains(p.body, okID) {
		t.Errorf("the failed filter lists the succeeded invocation %s", okID)
	}
	p = b.mustGet("/dashboard/invocations?function=ok&trigger=api&range=1h")
	wantContains(t, "function, trigger and range filter", p.body, okID)
	if strings.Contains(p.body, failedID) {
		t.Errorf("the function filter lists %s of another function", failedID)
	}
	p = b.mustGet("/dashboard/invocations?until=2001-01-01T00:00")
	wantContains(t, "until 2001", p.body, "No invocation matches these filters.")

	p = b.mustGet("/dashboard/invocations/" + okID)
	wantContains(t, "detail", p.body, okID, "succeeded", "&#34;hello&#34;: &#34;wörld", "Attempts", "Output")
	if strings.Contains(p.body, "wörld <b>") {
		t.Errorf("the event's data is not escaped")
	}
	p = b.mustGet("/dashboard/invocations/" + failedID)
	wantContains(t, "failed detail", p.body, "toggle is off", "toggle: not yet", `data-action="retry"`, "attempt 2")

	p = b.mustGet("/dashboard/functions")
	wantContains(t, "functions", p.body, "toggle", "Fails until the test lets it succeed.", "@every 1h", "next", "Run now")
	p = b.mustGet("/dashboard/functions/toggle")
	wantContains(t, "function", p.body, "Function toggle", "up to 2", failedID, "Run toggle")
	p = b.mustGet("/dashboard/queues")
	wantContains(t, "queues", p.body, "orders", ">1</td>") // one message scheduled an hour from now
	p = b.mustGet("/dashboard/failed")
	wantContains(t, "failed", p.body, failedID, "Retry all 1")
	p = b.mustGet("/dashboard/servers")
	wantContains(t, "servers", p.body, "this one", "alive", "leader")
	p = b.mustGet("/dashboard/static/app.css")
	if !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") || !strings.Contains(p.body, "prefers-color-scheme: dark") {
		t.Errorf("app.css: %s", p.header.Get("Content-Type"))
	}

	// Bad requests get a page that says what is wrong, and no store error.
	for path, want := range map[string]struct {
		status int
		text   string
	}{
		"/dashboard/nowhere":                              {404, "There is no page at /dashboard/nowhere."},
		"/dashboard/invocations/01NOTANID000000000000000": {404, "There is no invocation 01NOTANID000000000000000"},
		"/dashboard/invocations/%3Cscript%3E":             {404, "There is no invocation &#34;&lt;script&gt;&#34;"},
		"/dashboard/functions/nope":                       {404, `There is no function &#34;nope&#34;`},
		"/dashboard/invocations?state=sleepy":             {400, "sleepy"},
		"/dashboard/invocations?since=yesterday":          {400, "is not a time"},
		"/dashboard/invocations?range=1y":                 {400, "unknown time range"},
		"/dashboard/invocations?cursor=x%20y":             {400, "is not an invocation id"},
		"/dashboard/failed?cursor=%FF":                    {400, "is not an invocation id"},
		"/dashboard/static/nope.js":                       {404, ""},
	} {
		p := b.get(path)
		wantStatus(t, path, p, want.status)
		wantContains(t, path, p.body, want.text)
	}
	// The root of the listener leads to the dashboard.
	p = b.get("/")
	if p.status != http.StatusFound || p.header.Get("Location") != "/dashboard/" {
		t.Errorf("GET /: %d to %q, want 302 to /dashboard/", p.status, p.header.Get("Location"))
	}
}

func TestRetryAndCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := b.failed(1)[0]
	detail := "/dashboard/invocations/" + id

	b.pass.Store(true)
	p := b.post(detail, detail+"/retry", nil, nil)
	wantStatus(t, "retry", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != detail {
		t.Fatalf("retry redirects to %q, want %q", loc, detail)
	}
	inv := b.waitState(id, fnhost.StateSucceeded)
	if inv.Attempt != 3 {
		t.Errorf("after the retry: attempt %d, want 3", inv.Attempt)
	}
	p = b.mustGet(detail)
	wantContains(t, "detail after retry", p.body, "Retried: the invocation is pending.", "succeeded", "passed")
	// The flash message shows once.
	if p = b.mustGet(detail); strings.Contains(p.body, "Retried:") {
		t.Errorf("the flash message shows twice")
	}
	// Retrying a succeeded invocation runs it again; cancelling it is refused with a
	// message, and changes nothing.
	p = b.post(detail, detail+"/cancel", nil, nil)
	wantStatus(t, "cancel of a finished invocation", p, http.StatusSeeOther)
	p = b.mustGet(detail)
	wantContains(t, "detail after a refused cancel", p.body, "Not cancelled:")
	b.waitState(id, fnhost.StateSucceeded)

	later := b.invoke("ok", `1`, "?delay=1h")
	p = b.post("/dashboard/invocations/"+later, "/dashboard/invocations/"+later+"/cancel", nil, nil)
	wantStatus(t, "cancel", p, http.StatusSeeOther)
	b.waitState(later, fnhost.StateCancelled)

	p = b.post(detail, "/dashboard/invocations/01NOTANID000000000000000/retry", nil, nil)
	wantStatus(t, "retry of an unknown invocation", p, http.StatusNotFound)
}

func TestRunNow(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	from := "/dashboard/functions/ok"
	p := b.post(from, "/dashboard/functions/ok/run", url.Values{"data": {`{"n": 42}`}}, nil)
	wantStatus(t, "run", p, http.StatusSeeOther)
	loc := p.header.Get("Location")
	id := strings.TrimPrefix(loc, "/dashboard/invocations/")
	if id == loc {
		t.Fatalf("run redirects to %q, want an invocation", loc)
	}
	inv := b.waitState(id, fnhost.StateSucceeded)
	var ev fnhost.Event
	if err := json.Unmarshal(inv.Event, &ev); err != nil || string(ev.Data) != `{"n":42}` {
		t.Errorf("the invocation's data = %s (%v), want the form's", ev.Data, err)
	}
	wantContains(t, "after run", b.mustGet(loc).body, "Invoked ok.")

	// Bad JSON is refused with the form still filled in, and nothing is stored.
	before := len(b.list("ok"))
	p = b.post(from, "/dashboard/functions/ok/run", url.Values{"data": {`{n: 1}`}}, nil)
	wantStatus(t, "run with bad JSON", p, http.StatusBadRequest)
	wantContains(t, "run with bad JSON", p.body, "not valid JSON", "{n: 1}")
	if after := len(b.list("ok")); after != before {
		t.Errorf("a refused run stored an invocation: %d, then %d", before, after)
	}
	// Empty data sends null.
	p = b.post(from, "/dashboard/functions/ok/run", url.Values{"data": {"  "}}, nil)
	wantStatus(t, "run without data", p, http.StatusSeeOther)
	p = b.post(from, "/dashboard/functions/nope/run", nil, nil)
	wantStatus(t, "run of an unknown function", p, http.StatusNotFound)
}

// list returns the invocations of function in the store.
func (b *bundle) list(function string) []*fnhost.Invocation {
	b.t.Helper()
	page, err := b.h.Store().List(context.Background(), store.Filter{Function: function, Limit: 1000})
	if err != nil {
		b.t.Fatal(err)
	}
	return page.Items
}

func TestRetryAllFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ids := b.failed(12)
	b.pass.Store(true)
	p := b.post("/dashboard/failed", "/dashboard/failed/retry", url.Values{"function": {"toggle"}}, nil)
	wantStatus(t, "retry all", p, http.StatusSeeOther)
	for _, id := range ids {
		b.waitState(id, fnhost.StateSucceeded)
	}
	p = b.mustGet("/dashboard/failed?function=toggle")
	wantContains(t, "failed after retry all", p.body, "Retried 12 failed invocations.", "No failed invocation of toggle.")
}

// TestCSRF: a form that does not carry this dashboard's token, or that a browser says
// comes from another site, is refused, and nothing happens.
func TestCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	id := b.failed(1)[0]
	detail := "/dashboard/invocations/" + id
	b.mustGet(detail) // the browser has its CSRF cookie
	for name, c := range map[string]struct {
		fields url.Values
		header http.Header
	}{
		"no token":     {url.Values{"csrf": {""}}, nil},
		"forged token": {url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, nil},
		"other origin": {nil, http.Header{"Origin": {"http://evil.example"}}},
		"cross site":   {nil, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
	} {
		p := b.post(detail, detail+"/retry", c.fields, c.header)
		wantStatus(t, name, p, http.StatusForbidden)
		wantContains(t, name, p.body, "did not come from this dashboard")
	}
	// Without the cookie the token of another browser is no use.
	token := csrfOf(t, b.mustGet(detail).body)
	other := setup(t, "")
	other.base = b.base
	p := other.post(detail, detail+"/retry", url.Values{"csrf": {token}}, nil)
	wantStatus(t, "a token without its cookie", p, http.StatusForbidden)
	if inv := b.waitState(id, fnhost.StateFailed); inv.Attempt != 2 {
		t.Errorf("a refused retry ran: attempt %d", inv.Attempt)
	}
}

// TestLoopbackOnly: a dashboard without an API key answers only requests addressed to
// a loopback name, so that a page on another site cannot read it by DNS rebinding.
func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for host, want := range map[string]int{
		"evil.example:80": http.StatusForbidden, "10.0.0.1": http.StatusForbidden,
		"localhost:8080": http.StatusOK, "127.0.0.1": http.StatusOK, "[::1]:80": http.StatusOK, "app.localhost": http.StatusOK,
	} {
		req, _ := http.NewRequest("GET", b.base+"/dashboard/", nil)
		req.Host = host
		p := b.do(req)
		wantStatus(t, "Host "+host, p, want)
		if want == http.StatusForbidden {
			wantContains(t, "Host "+host, p.body, "only answers requests addressed to a loopback host")
		}
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	b := setup(t, "  api_key: s3cret-key")
	p := b.get("/dashboard/failed?function=x")
	wantStatus(t, "a page without a session", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/dashboard/login?next=%2Fdashboard%2Ffailed%3Ffunction%3Dx" {
		t.Fatalf("redirect to %q", loc)
	}
	p = b.mustGet("/dashboard/login")
	wantContains(t, "login", p.body, `type="password"`, "Log in to fnhost")
	if strings.Contains(p.body, "s3cret") {
		t.Fatal("the login page shows the key")
	}
	for _, path := range []string{"/dashboard/live", "/dashboard/invocations"} {
		if p := b.get(path); p.status != http.StatusUnauthorized && p.status != http.StatusSeeOther {
			t.Errorf("GET %s without a session: %d", path, p.status)
		}
	}
	p = b.post("/dashboard/login", "/dashboard/invocations/x/retry", nil, nil)
	wantStatus(t, "an action without a session", p, http.StatusUnauthorized)

	p = b.post("/dashboard/login", "/dashboard/login", url.Values{"key": {"wrong"}, "next": {"/dashboard/servers"}}, nil)
	wantStatus(t, "a wrong key", p, http.StatusUnauthorized)
	wantContains(t, "a wrong key", p.body, "That is not the API key of this host.")

	p = b.post("/dashboard/login", "/dashboard/login", url.Values{"key": {"s3cret-key"}, "next": {"https://evil.example/"}}, nil)
	wantStatus(t, "login", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/dashboard/" {
		t.Errorf("login redirects to %q: a next off the dashboard must be refused", loc)
	}
	var session *http.Cookie
	for _, c := range b.client.Jar.Cookies(mustURL(t, b.base+"/dashboard/")) {
		if c.Name == "fnhost_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie after the login")
	}
	p = b.mustGet("/dashboard/servers")
	wantContains(t, "a page with a session", p.body, "Log out")

	// A forged or tampered session is refused.
	for _, forged := range []string{"v1.99999999999.AAAA.AAAA", session.Value + "x", strings.Replace(session.Value, "v1.", "v1.9", 1)} {
		req, _ := http.NewRequest("GET", b.base+"/dashboard/servers", nil)
		req.AddCookie(&http.Cookie{Name: "fnhost_session", Value: forged})
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Errorf("forged session %q: status %d, want 303 to the login", forged, res.StatusCode)
		}
	}
	// The API still wants the key itself.
	if res, err := http.Get(b.base + "/api/v1/functions"); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API without the key: %v, %v", res.StatusCode, err)
	}

	p = b.post("/dashboard/servers", "/dashboard/logout", nil, nil)
	wantStatus(t, "logout", p, http.StatusSeeOther)
	wantStatus(t, "a page after the logout", b.get("/dashboard/servers"), http.StatusSeeOther)

	// Wrong keys, again and again, make an address wait.
	var last page
	for range 6 {
		last = b.post("/dashboard/login", "/dashboard/login", url.Values{"key": {"guess"}}, nil)
	}
	wantStatus(t, "the sixth wrong key", last, http.StatusTooManyRequests)
	wantContains(t, "the sixth wrong key", last.body, "Too many wrong keys")
	last = b.post("/dashboard/login", "/dashboard/login", url.Values{"key": {"s3cret-key"}}, nil)
	wantStatus(t, "the right key while waiting", last, http.StatusTooManyRequests)
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, "  dashboard: {read_only: true}")
	id := b.failed(1)[0]
	detail := "/dashboard/invocations/" + id
	p := b.mustGet(detail)
	wantContains(t, "read-only detail", p.body, "read-only")
	for _, page := range []string{detail, "/dashboard/functions", "/dashboard/failed", "/dashboard/functions/ok"} {
		body := b.mustGet(page).body
		for _, action := range []string{`/retry"`, `/cancel"`, `/run"`} {
			if strings.Contains(body, action) {
				t.Errorf("the read-only page %s offers %s", page, action)
			}
		}
	}
	// A read-only dashboard has no form to take a token from: the action is refused
	// before its token is looked at.
	p = b.post(detail, detail+"/retry", url.Values{"csrf": {"none"}}, nil)
	wantStatus(t, "retry on a read-only dashboard", p, http.StatusForbidden)
	wantContains(t, "retry on a read-only dashboard", p.body, "read-only")
	if inv := b.waitState(id, fnhost.StateFailed); inv.Attempt != 2 {
		t.Errorf("the read-only dashboard retried: attempt %d", inv.Attempt)
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, "  dashboard: {enabled: false}")
	wantStatus(t, "a disabled dashboard", b.get("/dashboard/"), http.StatusNotFound)
	if p := b.get("/"); p.status == http.StatusFound {
		t.Errorf("GET / redirects to a disabled dashboard")
	}
}

// TestLive reads the overview's stream: the first event is the live part, and a new
// failure shows in a later one.
func TestLive(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	req, _ := http.NewRequest("GET", b.base+"/dashboard/live", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	events := make(chan string)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var ev strings.Builder
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && ev.Len() > 0:
				events <- ev.String()
				ev.Reset()
			case strings.HasPrefix(line, "data: "):
				ev.WriteString(strings.TrimPrefix(line, "data: ") + "\n")
			}
		}
	}()
	first := <-events
	wantContains(t, "the first event", first, `data-count="failed">0<`, "Throughput, last hour")
	b.failed(1)
	for ev := range events {
		if strings.Contains(ev, `data-count="failed">1<`) {
			return
		}
	}
	t.Fatal("the stream ended before it showed the failure")
}

// TestShutdownEndsLiveStreams: an open live stream does not hold the host's shutdown
// (whose deadline is ten minutes here): the stream ends and Run returns.
func TestShutdownEndsLiveStreams(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	res, err := http.Get(b.base + "/dashboard/live")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 1)
	if _, err := res.Body.Read(buf); err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	// Stopping the host returns only once its listener has shut down, which waits for
	// open requests: the stream must end for it to return before the test times out.
	b.stop()
	n, err := bufio.NewReader(res.Body).Discard(1 << 30)
	t.Logf("the stream ended after %d more bytes (%v)", n, err)
}

// TestPaging walks the invocations list page by page with its Older links.
func TestPaging(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	var subs []fnhost.Submission
	for i := range 120 {
		subs = append(subs, fnhost.Submission{Function: "ok", Trigger: "api", RunAt: time.Now().Add(time.Hour),
			Event: fnhost.NewEvent("test", "test", "", json.RawMessage(fmt.Sprint(i)))})
	}
	if _, err := b.h.Runtime().Submit(context.Background(), subs...); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	path := "/dashboard/invocations?function=ok&state=scheduled"
	pages := 0
	for path != "" {
		body := b.mustGet(path).body
		pages++
		for _, m := range rowID.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Fatalf("invocation %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		path = ""
		if m := olderLink.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 120 || pages != 3 {
		t.Fatalf("%d invocations on %d pages, want 120 on 3", len(seen), pages)
	}
}
