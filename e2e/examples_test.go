package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
)

// example copies an example project (or the repository's quickstart, for "") into a
// temporary directory and prepares to run it on a free port.
func example(t *testing.T, name string, files ...string) *project {
	t.Helper()
	p := &project{t: t, dir: t.TempDir(), addr: freeAddr(t)}
	p.env = []string{"FNHOST_LISTEN=" + p.addr, "PYTHON=/usr/bin/python3"}
	src := filepath.Join("..", "examples", name)
	if name == "" {
		src = ".."
	}
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := os.Stat(filepath.Join(src, rel))
		dst := filepath.Join(p.dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, info.Mode()); err != nil {
			t.Fatal(err)
		}
	}
	if len(files) > 0 {
		for _, f := range files {
			copyFile(f)
		}
	} else {
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			if d.IsDir() {
				if d.Name() == ".fnhost" {
					return filepath.SkipDir
				}
				return os.MkdirAll(filepath.Join(p.dir, rel), 0o755)
			}
			copyFile(rel)
			return nil
		})
		if err != nil {
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

func TestExampleQuickstart(t *testing.T) {
	p := example(t, "", "functions.yaml", "examples/quickstart/shout.sh")
	p.start()
	var inv fnhost.Invocation
	p.api("POST", "/api/v1/functions/hello/invocations?sync=1", `{"name":"Ada"}`, &inv)
	if inv.State != fnhost.StateSucceeded {
		t.Fatalf("hello: %s", inv.State)
	}
	eventually(t, 20*time.Second, "shout to run with hello's output", func() bool {
		kids := p.all("function=shout&state=succeeded&parent_id=" + inv.ID)
		return len(kids) == 1 && strings.Contains(string(p.invocation(kids[0].ID).Output), "ADA")
	})
	var a struct{ ID string }
	p.api("POST", "/api/v1/functions/flaky/invocations", `{"until_attempt": 2}`, &a)
	eventually(t, 20*time.Second, "flaky to succeed on its second attempt", func() bool {
		inv := p.invocation(a.ID)
		return inv.State == fnhost.StateSucceeded && len(inv.Attempts) == 2
	})
}

func TestExamplePythonExec(t *testing.T) {
	p := example(t, "python-exec")
	p.start()
	var inv fnhost.Invocation
	p.api("POST", "/api/v1/functions/word-count/invocations?sync=1", `{"text": "the quick brown fox"}`, &inv)
	if inv.State != fnhost.StateSucceeded || !jsonEqual(inv.Output, `{"words": 4, "longest": "quick"}`) {
		t.Fatalf("word-count: %s %s", inv.State, inv.Output)
	}
	p.api("POST", "/api/v1/functions/word-count/invocations?sync=1", `{"txt": "oops"}`, &inv)
	if inv.State != fnhost.StateFailed || len(p.invocation(inv.ID).Attempts) != 1 {
		t.Fatalf("bad input should fail at once: %s", inv.State)
	}
}

func TestExampleEmbedded(t *testing.T) {
	p := example(t, "embedded", "functions.yaml")
	p.bin = filepath.Join(t.TempDir(), "embedded")
	if out, err := exec.Command("go", "build", "-o", p.bin, "../examples/embedded").CombinedOutput(); err != nil {
		t.Fatalf("build the embedded example: %v\n%s", err, out)
	}
	p.start()
	var inv fnhost.Invocation
	p.api("POST", "/api/v1/functions/greet/invocations?sync=1", `{"name":"Ada"}`, &inv)
	if inv.State != fnhost.StateSucceeded || !jsonEqual(inv.Output, `{"greeting": "Hello, Ada!"}`) {
		t.Fatalf("greet: %s %s", inv.State, inv.Output)
	}
}

func TestExampleWebhook(t *testing.T) {
	p := example(t, "webhook")
	p.env = append(p.env, "WEBHOOK_SECRET=s3cret")
	p.start()
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(body))
	post := func(sig string) int {
		req, _ := http.NewRequest("POST", "http://"+p.addr+"/hooks/github", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=" + hex.EncodeToString(mac.Sum(nil))); code != 202 {
		t.Fatalf("signed webhook: %d", code)
	}
	if code := post("sha256=" + strings.Repeat("0", 64)); code != 401 {
		t.Fatalf("forged webhook: %d", code)
	}
	eventually(t, 20*time.Second, "the push to be recorded", func() bool {
		return len(p.all("function=on-push&state=succeeded")) == 1
	})
	if n := len(p.all("function=on-push")); n != 1 {
		t.Fatalf("%d on-push invocations, want 1 (the forged one must not be stored)", n)
	}
	resp, err := http.Get("http://" + p.addr + "/hooks/ping/ada?code=let-me-in")
	if err != nil {
		t.Fatal(err)
	}
	var echoed struct {
		Params map[string]string `json:"params"`
	}
	json.NewDecoder(resp.Body).Decode(&echoed)
	resp.Body.Close()
	if resp.StatusCode != 200 || echoed.Params["name"] != "ada" {
		t.Fatalf("ping: %d %+v", resp.StatusCode, echoed)
	}
}

func TestExampleCron(t *testing.T) {
	p := example(t, "cron")
	p.start()
	eventually(t, 20*time.Second, "two ticks", func() bool {
		return len(p.all("function=tick&state=succeeded")) >= 2
	})
	var fns struct {
		Items []struct {
			Name     string `json:"name"`
			Triggers []struct {
				NextFire *time.Time `json:"next_fire"`
			} `json:"triggers"`
		} `json:"items"`
	}
	p.api("GET", "/api/v1/functions", nil, &fns)
	for _, f := range fns.Items {
		if len(f.Triggers) != 1 || f.Triggers[0].NextFire == nil || f.Triggers[0].NextFire.Before(time.Now().Add(-time.Second)) {
			t.Fatalf("%s: next fire %+v", f.Name, f.Triggers)
		}
	}
}

func TestExampleFSInbox(t *testing.T) {
	p := example(t, "fs-inbox")
	p.start()
	if err := os.MkdirAll(filepath.Join(p.dir, "inbox", "archive"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "inbox", "archive", "ünïcode name.csv"), []byte("item,amount\napples,3\npears,4.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the CSV to be imported", func() bool {
		got := p.all("function=import-csv&state=succeeded")
		return len(got) == 1 && jsonEqual(p.invocation(got[0].ID).Output, `{"file": "archive/ünïcode name.csv", "rows": 3, "total": 7.5}`)
	})
}

func TestExampleQueue(t *testing.T) {
	p := example(t, "queue")
	p.start()
	if out, err := p.cli("enqueue", "orders", "-d", `{"order": "A-1"}`); err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "both line items to ship", func() bool {
		return len(p.all("function=ship-item&state=succeeded")) == 2
	})
}

// TestInitScaffoldRuns: `fnhost init` writes a project that runs as is, with a working
// function for every local trigger kind.
func TestInitScaffoldRuns(t *testing.T) {
	p := &project{t: t, dir: filepath.Join(t.TempDir(), "myapp"), addr: freeAddr(t)}
	p.env = []string{"FNHOST_LISTEN=" + p.addr}
	t.Cleanup(func() {
		if p.running() {
			p.kill()
		}
		if t.Failed() && p.log != nil {
			t.Logf("host log:\n%s", tail(p.log.String(), 8000))
		}
	})
	cmd := exec.Command(binary, "init", p.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "init", p.dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "already exists") {
		t.Fatalf("a second init over the project should refuse: %v\n%s", err, out)
	}
	if out, err := p.cli("validate"); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	p.start()

	resp, err := http.Post("http://"+p.addr+"/hooks/hello", "application/json", strings.NewReader(`{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	// echo answers with the request it was handed: method, path, headers, body.
	var hello struct {
		Method string            `json:"method"`
		Body   map[string]string `json:"body"`
	}
	json.NewDecoder(resp.Body).Decode(&hello)
	resp.Body.Close()
	if resp.StatusCode != 200 || hello.Method != "POST" || hello.Body["name"] != "Ada" {
		t.Fatalf("hello: %d %+v", resp.StatusCode, hello)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "inbox", "first.csv"), []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cli("enqueue", "orders", "-d", `{"id": 1}`); err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	if out, err := p.cli("invoke", "heartbeat", "--sync"); err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("invoke heartbeat: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "the CSV and the order to be handled", func() bool {
		csvs := p.all("function=inbox&state=succeeded")
		return len(csvs) == 1 && jsonEqual(p.invocation(csvs[0].ID).Output, `{"file": "first.csv", "rows": 2}`) &&
			len(p.all("function=orders&state=succeeded")) == 1
	})
}
