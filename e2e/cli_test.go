package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
)

const cliManifest = `
version: 1
host:
  listen: {{ADDR}}
  api_key: ${TEST_API_KEY:-}
defaults:
  retry: {max_attempts: 2, initial_interval: 50ms}
functions:
  hello:
    handler: {builtin: echo}
    then: [after-hello]
  after-hello:
    handler: {builtin: echo}
  broken:
    handler: {builtin: fail}
    retry: {max_attempts: 1}
    on_failure: alert
  alert:
    handler: {builtin: echo}
  boom:
    handler: {builtin: panic}
    retry: {max_attempts: 1}
`

func TestCLI(t *testing.T) {
	p := newProject(t, cliManifest, nil)
	p.start()

	out, err := p.cli("invoke", "hello", "-d", `{"name":"Ada"}`, "--sync", "--json")
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, out)
	}
	var inv fnhost.Invocation
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("invoke --json printed %q: %v", out, err)
	}
	if inv.State != fnhost.StateSucceeded || !jsonEqual(inv.Output, `{"name":"Ada"}`) {
		t.Fatalf("invoke: state %s output %s", inv.State, inv.Output)
	}

	out, err = p.cli("runs", "--function", "hello")
	if err != nil || !strings.Contains(out, inv.ID) || !strings.Contains(out, "succeeded") {
		t.Fatalf("runs: %v\n%s", err, out)
	}
	out, err = p.cli("show", inv.ID)
	if err != nil || !strings.Contains(out, "attempt 1: succeeded") || !strings.Contains(out, `"name": "Ada"`) {
		t.Fatalf("show: %v\n%s", err, out)
	}

	// The continuation ran with hello's output as its data.
	var children []fnhost.Invocation
	eventually(t, 10*time.Second, "the then-continuation to succeed", func() bool {
		children = p.all("parent_id=" + inv.ID)
		return len(children) == 1 && children[0].State == fnhost.StateSucceeded
	})
	child := p.invocation(children[0].ID)
	if child.Function != "after-hello" || !jsonEqual(child.Output, `{"name":"Ada"}`) {
		t.Fatalf("continuation: %s output %s", child.Function, child.Output)
	}

	// A permanent failure: exit code 1, listed as failed, on_failure runs once.
	out, err = p.cli("invoke", "broken", "-d", `{"message":"disk full"}`, "--sync")
	if err == nil || !strings.Contains(out, "failed") || !strings.Contains(out, "disk full") {
		t.Fatalf("invoke broken: want failure, got %v\n%s", err, out)
	}
	failed := p.all("function=broken&state=failed")
	if len(failed) != 1 {
		t.Fatalf("%d failed invocations of broken, want 1", len(failed))
	}
	out, err = p.cli("runs", "--state", "failed")
	if err != nil || !strings.Contains(out, failed[0].ID) {
		t.Fatalf("runs --state failed: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "on_failure to run", func() bool {
		alerts := p.all("function=alert&state=succeeded")
		return len(alerts) == 1 && alerts[0].ParentID != nil && *alerts[0].ParentID == failed[0].ID
	})

	// Retry puts it back and it fails again with a second attempt recorded.
	out, err = p.cli("retry", failed[0].ID)
	if err != nil || !strings.Contains(out, "pending") {
		t.Fatalf("retry: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "the retried invocation to fail again", func() bool {
		inv := p.invocation(failed[0].ID)
		return inv.State == fnhost.StateFailed && len(inv.Attempts) == 2
	})

	// A delayed invocation is scheduled and can be cancelled.
	out, err = p.cli("invoke", "hello", "--delay", "1h", "--json")
	if err != nil {
		t.Fatalf("invoke --delay: %v\n%s", err, out)
	}
	var delayed struct{ ID, State string }
	_ = json.Unmarshal([]byte(out), &delayed)
	if delayed.State != "scheduled" {
		t.Fatalf("delayed invocation: %s", out)
	}
	out, err = p.cli("cancel", delayed.ID)
	if err != nil || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	if _, err := p.cli("cancel", delayed.ID); err == nil {
		t.Fatal("cancelling a cancelled invocation succeeded")
	}
	// Its awaiting continuation was cancelled with it.
	if kids := p.all("parent_id=" + delayed.ID); len(kids) != 1 || kids[0].State != fnhost.StateCancelled {
		t.Fatalf("the continuation of a cancelled invocation: %+v", kids)
	}

	// A panicking handler fails its attempt; the host lives on.
	var boom fnhost.Invocation
	p.api("POST", "/api/v1/functions/boom/invocations?sync=1", `{}`, &boom)
	if boom.State != fnhost.StateFailed || boom.Error == nil || !strings.Contains(*boom.Error, "panic") {
		t.Fatalf("panic: state %s error %v", boom.State, boom.Error)
	}
	if full := p.invocation(boom.ID); !strings.Contains(full.Attempts[0].Log, "goroutine") {
		t.Fatalf("the panic's stack is not in the attempt log: %q", full.Attempts[0].Log)
	}
	if code := p.api("GET", "/healthz", nil, nil); code != 200 {
		t.Fatalf("healthz after a panic: %d", code)
	}

	// Bad requests get JSON errors.
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if code := p.api("POST", "/api/v1/functions/nope/invocations", `{}`, &apiErr); code != 404 || apiErr.Error.Code != "function_not_found" {
		t.Fatalf("unknown function: %d %+v", code, apiErr)
	}
	if code := p.api("POST", "/api/v1/functions/hello/invocations", `{not json`, &apiErr); code != 400 || apiErr.Error.Code != "bad_json" {
		t.Fatalf("bad json: %d %+v", code, apiErr)
	}
	if code := p.api("GET", "/api/v1/invocations?state=bogus", nil, &apiErr); code != 400 || !strings.Contains(apiErr.Error.Message, "unknown state") {
		t.Fatalf("bad state: %d %+v", code, apiErr)
	}
	if code := p.api("POST", "/api/v1/functions/hello/invocations", strings.Repeat("1", 2<<20), &apiErr); code != 413 {
		t.Fatalf("oversized body: %d %+v", code, apiErr)
	}

	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`fnhost_attempts_total{function="hello",outcome="succeeded"} 1`,
		`fnhost_attempts_total{function="broken",outcome="failed"} 2`,
		`fnhost_invocations{state="cancelled"} 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	p.stop()
}

func TestAPIKeyRequired(t *testing.T) {
	t.Setenv("TEST_API_KEY", "s3cret-key")
	p := newProject(t, cliManifest, nil)
	p.start()
	if code := p.api("GET", "/api/v1/functions", nil, nil); code != 401 {
		t.Fatalf("without a key: status %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/api/v1/functions", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("with a wrong key: status %d, want 401", resp.StatusCode)
	}
	// The CLI takes the key from the manifest.
	out, err := p.cli("invoke", "hello", "-d", `"hi"`, "--sync")
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("invoke with the manifest's key: %v\n%s", err, out)
	}
	// The key never shows in the API.
	var fns json.RawMessage
	req, _ = http.NewRequest("GET", "http://"+p.addr+"/api/v1/functions", nil)
	req.Header.Set("X-Fnhost-Key", "s3cret-key")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the key: %v %v", err, resp)
	}
	fns, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(fns), "s3cret") || strings.Contains(p.log.String(), "s3cret") {
		t.Fatal("the API key leaked into the API or the log")
	}
}

func TestValidatePrintsEveryError(t *testing.T) {
	p := newProject(t, `
version: 1
host:
  workers: many
functions:
  a:
    handler: {builtin: echo}
    tiemout: 5s
  b:
    handler: {exec: ls}
    then: [missing]
`, nil)
	out, err := p.cli("validate")
	if err == nil {
		t.Fatalf("validate accepted a bad manifest:\n%s", out)
	}
	for _, want := range []string{"functions.yaml:4:12", "functions.yaml:8:5", "functions.yaml:10:21", "missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	good := filepath.Join(p.dir, "functions.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nfunctions:\n  a:\n    handler: {builtin: echo}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cli("validate"); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("validate of a good manifest: %v\n%s", err, out)
	}
}
