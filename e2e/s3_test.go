package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost/internal/s3test"
)

const s3Manifest = `
version: 1
host:
  listen: {{ADDR}}
  workers: 8
functions:
  digest:
    handler: {exec: [/bin/sh, ./digest.sh]}
    retry: {max_attempts: 2, initial_interval: 50ms}
    triggers:
      - s3:
          endpoint: {{ENDPOINT}}
          bucket: inbox
          prefix: in/
          events: [created, removed]
          access_key: ${S3_ACCESS_KEY}
          secret_key: ${S3_SECRET_KEY}
          token: ${S3_TOKEN}
          target: fnhost
          download: true
          reconcile: 2s
`

// digestScript answers with the SHA-256 of the downloaded object (or "removed").
const digestScript = `#!/bin/sh
if [ -z "$FNHOST_INPUT_FILE" ]; then
  cat >/dev/null
  echo '{"removed": true}'
  exit 0
fi
cat >/dev/null
sum=$(sha256sum "$FNHOST_INPUT_FILE" | cut -d' ' -f1)
echo "{\"sha256\": \"$sum\", \"file\": \"$FNHOST_INPUT_FILE\"}"
`

// s3Run is one invocation of digest as the API shows it.
type s3Run struct {
	id, state, typ, key, etag string
	sha256, file              string
	removed                   bool
}

func s3Runs(p *project) []s3Run {
	p.t.Helper()
	var out []s3Run
	for _, item := range p.all("function=digest") {
		inv := p.invocation(item.ID)
		var ev struct {
			Type string `json:"type"`
			Data struct {
				S3 struct {
					Object struct {
						Key  string `json:"key"`
						ETag string `json:"eTag"`
					} `json:"object"`
				} `json:"s3"`
			} `json:"data"`
		}
		if err := json.Unmarshal(inv.Event, &ev); err != nil {
			p.t.Fatalf("%s: event %s: %v", inv.ID, inv.Event, err)
		}
		r := s3Run{id: inv.ID, state: string(inv.State), typ: ev.Type, key: ev.Data.S3.Object.Key, etag: ev.Data.S3.Object.ETag}
		var res struct {
			SHA256  string `json:"sha256"`
			File    string `json:"file"`
			Removed bool   `json:"removed"`
		}
		if json.Unmarshal(inv.Output, &res) == nil {
			r.sha256, r.file, r.removed = res.SHA256, res.File, res.Removed
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].key < out[j].key || out[i].key == out[j].key && out[i].id < out[j].id
	})
	return out
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestS3Downtime: the host is SIGKILLed; 50 objects land (and one is removed) while it
// is down; MinIO keeps its events in its queue and sends them again once the host is
// back, and the host's listing at start finds the same objects. Every object version
// runs exactly once, downloaded for the exec handler, and the file is gone afterwards.
func TestS3Downtime(t *testing.T) {
	p := newProject(t, s3Manifest, map[string]string{"digest.sh": digestScript})
	const token = "e2e-hook-token"
	srv := s3test.StartMinIO(t, s3test.MinIOOptions{Webhooks: map[string]s3test.Webhook{
		"fnhost": {Endpoint: "http://" + p.addr + "/hooks/s3", AuthToken: token}, // with a queue dir
	}})
	p.rewrite("{{ENDPOINT}}", srv.Endpoint)
	p.env = append(p.env, "S3_ACCESS_KEY="+srv.AccessKey, "S3_SECRET_KEY="+srv.SecretKey, "S3_TOKEN="+token)
	srv.MakeBucket(t, "inbox")

	content := map[string]string{}
	put := func(key, body string) {
		srv.Put(t, "inbox", key, body)
		content[key] = body
	}
	put("in/before start.txt", "was there before the first start")
	p.start()
	put("in/while up ünï+plus.txt", "put while the host runs")
	put("out/not watched", "outside the prefix")
	eventually(t, 30*time.Second, "the first two objects", func() bool {
		n := 0
		for _, r := range s3Runs(p) {
			if r.state == "succeeded" {
				n++
			}
		}
		return n == 2
	})

	p.kill()
	for i := range 50 {
		put(fmt.Sprintf("in/down/%02d space and ünïcode.bin", i), strings.Repeat(fmt.Sprint(i), i+1))
	}
	srv.Remove(t, "inbox", "in/before start.txt")
	put("in/while up ünï+plus.txt", "overwritten while the host was down")
	p.start()

	want := 2 + 50 + 1 + 1 // two before, fifty new, one removal, one new version
	eventually(t, 60*time.Second, fmt.Sprintf("%d succeeded invocations", want), func() bool {
		n := 0
		for _, r := range s3Runs(p) {
			if r.state == "succeeded" {
				n++
			}
		}
		return n >= want
	})
	// MinIO's queue sends every 3 s and the listing runs every 2 s: give both the time
	// to deliver again what was already run.
	time.Sleep(7 * time.Second)

	runs := s3Runs(p)
	if len(runs) != want {
		t.Errorf("%d invocations, want %d", len(runs), want)
	}
	seen := map[string]int{}
	for _, r := range runs {
		if r.state != "succeeded" {
			t.Errorf("%s %q: %s", r.id, r.key, r.state)
		}
		if strings.HasPrefix(r.key, "out/") {
			t.Errorf("an object outside the prefix ran: %q", r.key)
		}
		seen[r.typ+" "+r.key+" "+r.sha256]++
		if r.typ == "fnhost.s3.removed" {
			if !r.removed || r.key != "in/before start.txt" {
				t.Errorf("removal run %+v", r)
			}
			continue
		}
		if r.file == "" {
			t.Errorf("%q: no FNHOST_INPUT_FILE", r.key)
		}
	}
	for key, body := range content {
		if strings.HasPrefix(key, "out/") {
			continue
		}
		if n := seen["fnhost.s3.created "+key+" "+sha(body)]; n != 1 {
			t.Errorf("%q with its latest content: %d runs, want 1", key, n)
		}
	}
	if n := seen["fnhost.s3.created in/while up ünï+plus.txt "+sha("put while the host runs")]; n != 1 {
		t.Errorf("the first version of the overwritten object: %d runs, want 1", n)
	}
	if n := seen["fnhost.s3.created in/before start.txt "+sha("was there before the first start")]; n != 1 {
		t.Errorf("the object there before the first start: %d runs, want 1", n)
	}
	if t.Failed() && len(runs) < 80 {
		t.Logf("runs: %+v", runs)
	}
}

// TestS3SetupCLI: fnhost s3 setup prints the MinIO settings and configures the bucket;
// it changes nothing the second time.
func TestS3SetupCLI(t *testing.T) {
	p := newProject(t, s3Manifest, map[string]string{"digest.sh": digestScript})
	srv := s3test.StartMinIO(t, s3test.MinIOOptions{Webhooks: map[string]s3test.Webhook{
		"fnhost": {Endpoint: "http://" + p.addr + "/hooks/s3", NoQueue: true},
	}})
	p.rewrite("{{ENDPOINT}}", srv.Endpoint)
	p.env = append(p.env, "S3_ACCESS_KEY="+srv.AccessKey, "S3_SECRET_KEY="+srv.SecretKey, "S3_TOKEN=tok")

	out, err := p.cli("s3", "setup", "--dry-run")
	if err != nil {
		t.Fatalf("setup --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{"MINIO_NOTIFY_WEBHOOK_ENABLE_fnhost=on", "MINIO_NOTIFY_WEBHOOK_ENDPOINT_fnhost=http://" + p.addr + "/hooks/s3", "not applied (--dry-run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "=tok") {
		t.Errorf("the token is printed:\n%s", out)
	}
	if out, err := p.cli("s3", "setup"); err == nil || !strings.Contains(out, "inbox") {
		t.Errorf("setup without the bucket: err %v, want a failure naming the bucket:\n%s", err, out)
	}
	out, err = p.cli("s3", "setup", "--create-buckets")
	if err != nil || !strings.Contains(out, `created bucket "inbox"`) || !strings.Contains(out, ": ok") {
		t.Fatalf("setup --create-buckets: %v\n%s", err, out)
	}
	if out, err := p.cli("s3", "setup"); err != nil || !strings.Contains(out, ": ok") {
		t.Errorf("setup again: %v\n%s", err, out)
	}
	cfg, err := srv.Client().GetBucketNotification(t.Context(), "inbox")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.QueueConfigs) != 1 || cfg.QueueConfigs[0].Queue != s3test.WebhookARN("fnhost") {
		t.Errorf("bucket notification = %+v, want one rule for the fnhost target", cfg.QueueConfigs)
	}
}

// rewrite replaces old with new in the project's manifest.
func (p *project) rewrite(old, new string) {
	p.t.Helper()
	path := filepath.Join(p.dir, "functions.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), old, new)), 0o644); err != nil {
		p.t.Fatal(err)
	}
}
