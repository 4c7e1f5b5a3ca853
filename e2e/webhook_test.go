package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
)

const webhookSecret = "It's a Secret to Everybody"

const webhookKey = "the-route-key-42"

const webhookManifest = `
version: 1
host:
  listen: {{ADDR}}
defaults:
  retry: {max_attempts: 1}
functions:
  github:
    handler: {builtin: echo}
    triggers:
      - http:
          path: /hooks/github
          auth: {hmac: {secret: "` + webhookSecret + `"}}
  keyed:
    handler: {builtin: echo}
    triggers:
      - http: {path: /hooks/keyed, auth: {key: ` + webhookKey + `}}
  repos:
    handler: {builtin: echo}
    triggers:
      - http: {path: "/repos/{owner}/{repo}", methods: [POST, PUT]}
  small:
    handler: {builtin: echo}
    triggers:
      - http: {path: /hooks/small, max_body_bytes: 64}
  echo:
    handler: {builtin: echo}
    triggers:
      - http: {path: /sync/echo, mode: sync}
  made:
    handler: {exec: [/bin/sh, ./made.sh]}
    triggers:
      - http: {path: /sync/made, mode: sync}
`

const madeScript = `#!/bin/sh
cat > /dev/null
echo '{"status":201,"headers":{"X-A":"b"},"body":"made"}'
`

// reply is an answer of the host, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// request sends a request to the host with the given headers and reads the answer.
func (p *project) request(method, path, body string, header map[string]string) reply {
	p.t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: raw}
}

// decode reads a JSON answer into a map.
func (r reply) decode(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d: the answer is not JSON: %q", r.status, r.body)
	}
	return m
}

// errorCode is the code of a JSON error answer.
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.decode(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// eventData reads the data of the event of a persisted invocation.
func (p *project) eventData(id string) map[string]any {
	p.t.Helper()
	inv := p.invocation(id)
	var ev fnhost.Event
	if err := json.Unmarshal(inv.Event, &ev); err != nil {
		p.t.Fatalf("event of %s: %v", id, err)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		p.t.Fatalf("event data of %s: %v", id, err)
	}
	return data
}

func hubSignature(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// metric reads one sample of the host's /metrics; -1 when it is not there.
func (p *project) metric(series string) float64 {
	p.t.Helper()
	r := p.request("GET", "/metrics", "", nil)
	if r.status != 200 {
		p.t.Fatalf("/metrics: status %d", r.status)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindSubmatch(r.body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		p.t.Fatalf("%s: %v", series, err)
	}
	return v
}

func TestWebhooks(t *testing.T) {
	p := newProject(t, webhookManifest, map[string]string{"made.sh": madeScript})
	p.start()

	t.Run("signed GitHub delivery is accepted and persisted", func(t *testing.T) {
		body := `{"action":"opened","number":7,"repository":{"full_name":"ada/engine"}}`
		r := p.request("POST", "/hooks/github", body, map[string]string{
			"Content-Type": "application/json", "X-GitHub-Event": "pull_request", "X-Hub-Signature-256": hubSignature(webhookSecret, body),
		})
		if r.status != 202 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		got := r.decode(t)
		id, _ := got["id"].(string)
		if id == "" || got["function"] != "github" || got["status_url"] != "/api/v1/invocations/"+id || r.header.Get("Location") != "/api/v1/invocations/"+id {
			t.Fatalf("answer %s, Location %q", r.body, r.header.Get("Location"))
		}
		inv := p.invocation(id)
		if inv.Trigger != "http" || inv.Function != "github" {
			t.Errorf("invocation %+v", inv)
		}
		data := p.eventData(id)
		b, _ := json.Marshal(data["body"])
		if !jsonEqual(b, body) {
			t.Errorf("event body %s, want %s", b, body)
		}
		headers, _ := data["headers"].(map[string]any)
		if _, ok := headers["X-Hub-Signature-256"]; ok || headers["X-Github-Event"] == nil {
			t.Errorf("event headers %v", headers)
		}
		eventually(t, 30*time.Second, "the delivery runs", func() bool {
			return p.invocation(id).State == fnhost.StateSucceeded
		})
	})

	t.Run("bad signatures are refused and nothing is persisted", func(t *testing.T) {
		body := `{"action":"deleted"}`
		before := len(p.all("function=github"))
		for name, header := range map[string]map[string]string{
			"forged":       {"X-Hub-Signature-256": hubSignature("not the secret", body)},
			"missing":      {},
			"other body":   {"X-Hub-Signature-256": hubSignature(webhookSecret, `{"action":"created"}`)},
			"other header": {"X-Signature": hubSignature(webhookSecret, body)},
		} {
			r := p.request("POST", "/hooks/github", body, header)
			if r.status != 401 || r.errorCode(t) != "bad_signature" {
				t.Errorf("%s: status %d %s", name, r.status, r.body)
			}
			if !strings.Contains(string(r.body), "X-Hub-Signature-256") || strings.Contains(string(r.body), webhookSecret) {
				t.Errorf("%s: the message must name the header and not the secret: %s", name, r.body)
			}
		}
		if after := len(p.all("function=github")); after != before {
			t.Errorf("%d invocations after refusals, want %d", after, before)
		}
	})

	t.Run("key in header or query", func(t *testing.T) {
		before := len(p.all("function=keyed"))
		r := p.request("POST", "/hooks/keyed", `{"via":"header"}`, map[string]string{"X-Fnhost-Key": webhookKey})
		if r.status != 202 {
			t.Fatalf("header: status %d %s", r.status, r.body)
		}
		r = p.request("POST", "/hooks/keyed?code="+webhookKey+"&page=2", `{"via":"query"}`, nil)
		if r.status != 202 {
			t.Fatalf("query: status %d %s", r.status, r.body)
		}
		data := p.eventData(r.decode(t)["id"].(string))
		if q, _ := json.Marshal(data["query"]); !jsonEqual(q, `{"page":["2"]}`) {
			t.Errorf("event query %s: the key must not be in it", q)
		}
		for name, c := range map[string]struct {
			path   string
			header map[string]string
		}{
			"wrong header": {"/hooks/keyed", map[string]string{"X-Fnhost-Key": "guess"}},
			"wrong query":  {"/hooks/keyed?code=guess", nil},
			"none":         {"/hooks/keyed", nil},
		} {
			r := p.request("POST", c.path, `{}`, c.header)
			if r.status != 401 || r.errorCode(t) != "unauthorized" || !strings.Contains(string(r.body), "X-Fnhost-Key") {
				t.Errorf("%s: status %d %s", name, r.status, r.body)
			}
		}
		if after := len(p.all("function=keyed")); after != before+2 {
			t.Errorf("%d invocations, want %d", after, before+2)
		}
	})

	t.Run("sync echo answers with the request", func(t *testing.T) {
		r := p.request("POST", "/sync/echo", `{"name":"Ada"}`, map[string]string{"Content-Type": "application/json"})
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d %v %s", r.status, r.header, r.body)
		}
		got := r.decode(t)
		if b, _ := json.Marshal(got["body"]); !jsonEqual(b, `{"name":"Ada"}`) || got["method"] != "POST" || got["path"] != "/sync/echo" {
			t.Errorf("answer %s", r.body)
		}
		id := r.header.Get("X-Fnhost-Invocation-Id")
		if id == "" || p.invocation(id).State != fnhost.StateSucceeded {
			t.Errorf("invocation %q", id)
		}
	})

	t.Run("sync handler shapes the answer", func(t *testing.T) {
		r := p.request("POST", "/sync/made", `{}`, nil)
		if r.status != 201 || r.header.Get("X-A") != "b" || string(r.body) != "made" {
			t.Fatalf("status %d, X-A %q, body %q", r.status, r.header.Get("X-A"), r.body)
		}
	})

	t.Run("body over the limit", func(t *testing.T) {
		before := len(p.all("function=small"))
		r := p.request("POST", "/hooks/small", `"`+strings.Repeat("x", 70)+`"`, nil)
		if r.status != 413 || r.errorCode(t) != "body_too_large" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		if after := len(p.all("function=small")); after != before {
			t.Errorf("%d invocations after a 413, want %d", after, before)
		}
		if r := p.request("POST", "/hooks/small", `"fits"`, nil); r.status != 202 {
			t.Errorf("a small body: status %d %s", r.status, r.body)
		}
	})

	t.Run("wrong method", func(t *testing.T) {
		r := p.request("GET", "/hooks/github", "", nil)
		if r.status != 405 || r.header.Get("Allow") != "POST" || r.errorCode(t) != "method_not_allowed" {
			t.Errorf("status %d, Allow %q, %s", r.status, r.header.Get("Allow"), r.body)
		}
		r = p.request("DELETE", "/repos/ada/engine", "", nil)
		if r.status != 405 || r.header.Get("Allow") != "POST, PUT" {
			t.Errorf("status %d, Allow %q, %s", r.status, r.header.Get("Allow"), r.body)
		}
	})

	t.Run("path parameters reach the event", func(t *testing.T) {
		r := p.request("PUT", "/repos/ada/engine?ref=main", `{}`, nil)
		if r.status != 202 {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		data := p.eventData(r.decode(t)["id"].(string))
		if params, _ := json.Marshal(data["params"]); !jsonEqual(params, `{"owner":"ada","repo":"engine"}`) || data["method"] != "PUT" {
			t.Errorf("event data %v", data)
		}
	})

	t.Run("metrics count refusals", func(t *testing.T) {
		for _, c := range []struct {
			series string
			refuse func()
		}{
			{`fnhost_http_trigger_refused_total{function="keyed",reason="bad_key"}`, func() {
				p.request("POST", "/hooks/keyed", `{}`, map[string]string{"X-Fnhost-Key": "guess again"})
			}},
			{`fnhost_http_trigger_refused_total{function="github",reason="bad_signature"}`, func() {
				p.request("POST", "/hooks/github", `{}`, map[string]string{"X-Hub-Signature-256": hubSignature("guess", `{}`)})
			}},
			{`fnhost_http_trigger_refused_total{function="small",reason="body_too_large"}`, func() {
				p.request("POST", "/hooks/small", strings.Repeat("x", 65), nil)
			}},
		} {
			before := p.metric(c.series)
			if before < 0 {
				t.Errorf("/metrics has no %s", c.series)
				continue
			}
			c.refuse()
			if after := p.metric(c.series); after != before+1 {
				t.Errorf("%s is %v after one more refusal, want %v", c.series, after, before+1)
			}
		}
	})
}
