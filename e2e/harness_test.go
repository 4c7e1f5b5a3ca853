// Package e2e runs the real fnhost binary against real processes and a real store, and
// checks what a user would see: through the HTTP API and the CLI.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/pgtest"
	"github.com/fnhost/fnhost/internal/testlog"
)

// binary is the fnhost binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fnhost-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fnhost")
	build := exec.Command("go", "build", "-o", binary, "../cmd/fnhost")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fnhost:", err)
		os.Exit(1)
	}
	code := pgtest.Run(m) // the tests on PostgreSQL share one server
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// project is a directory with a manifest, and the host processes started on it.
type project struct {
	t      *testing.T
	dir    string
	addr   string
	proc   *os.Process
	exited chan struct{}
	log    *testlog.Buffer
	// env is added to the host's environment; bin replaces the fnhost binary.
	env []string
	bin string
}

// newProject writes manifest (with {{ADDR}} replaced by a free address) and any extra
// files into a temporary directory.
func newProject(t *testing.T, manifest string, files map[string]string) *project {
	t.Helper()
	p := &project{t: t, dir: t.TempDir(), addr: freeAddr(t)}
	manifest = strings.ReplaceAll(manifest, "{{ADDR}}", p.addr)
	if err := os.WriteFile(filepath.Join(p.dir, "functions.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		path := filepath.Join(p.dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if p.running() {
			p.kill()
		}
		if t.Failed() && p.log != nil {
			t.Logf("host log:\n%s", tail(p.log.String(), 8000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// start runs `fnhost run` and waits until /readyz answers.
func (p *project) start() {
	p.t.Helper()
	p.log = &testlog.Buffer{}
	bin := binary
	if p.bin != "" {
		bin = p.bin
	}
	cmd := exec.Command(bin, "run")
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.proc = cmd.Process
	p.exited = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.exited)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !p.running() {
			p.t.Fatalf("fnhost exited at start:\n%s", p.log.String())
		}
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("fnhost did not become ready:\n%s", p.log.String())
}

func (p *project) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL: the host gets no chance to clean up.
func (p *project) kill() {
	p.t.Helper()
	_ = p.proc.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *project) stop() {
	p.t.Helper()
	_ = p.proc.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatal("fnhost did not exit within 60s of SIGTERM")
	}
}

// api sends a request to the host's API and decodes the JSON answer into out.
func (p *project) api(method, path string, body any, out any) int {
	p.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, "http://"+p.addr+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// invocation reads one invocation with its attempts.
func (p *project) invocation(id string) *fnhost.Invocation {
	p.t.Helper()
	var inv fnhost.Invocation
	if code := p.api("GET", "/api/v1/invocations/"+id, nil, &inv); code != 200 {
		p.t.Fatalf("get invocation %s: status %d", id, code)
	}
	return &inv
}

// all lists every invocation matching query (e.g. "state=failed"), following cursors.
func (p *project) all(query string) []fnhost.Invocation {
	p.t.Helper()
	var out []fnhost.Invocation
	cursor := ""
	for {
		var page struct {
			Items      []fnhost.Invocation `json:"items"`
			NextCursor string              `json:"next_cursor"`
		}
		path := "/api/v1/invocations?limit=1000&" + query
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code := p.api("GET", path, nil, &page); code != 200 {
			p.t.Fatalf("list %s: status %d", query, code)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// eventually polls cond until it holds, failing the test after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting after %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs the fnhost binary with args in the project directory.
func (p *project) cli(args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// jsonEqual reports whether two JSON documents hold the same value.
func jsonEqual(a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
