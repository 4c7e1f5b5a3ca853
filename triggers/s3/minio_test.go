package s3_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost/internal/s3test"
	"github.com/fnhost/fnhost/manifest"
)

// oddKeys are object keys that encodings like to break.
var oddKeys = []string{
	"a b.txt", "a+b.txt", "ünï cödé/日本.txt", "dir/sub/x%20y.txt", "q?x=1&y#z.txt",
	"emoji 🎉/deep/er/file", "semi;colon,comma'quote\".txt", "trailing space ",
}

// conn is the trigger configuration that reaches srv's bucket.
func conn(srv *s3test.Server, bucket string) manifest.S3Trigger {
	return manifest.S3Trigger{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket,
		AccessKey: manifest.Secret(srv.AccessKey), SecretKey: manifest.Secret(srv.SecretKey),
		Events: []string{"created"}, Mode: "webhook", Reconcile: time.Hour, Interval: 100 * time.Millisecond,
	}
}

// sentinel puts a fresh object and waits for its call: every event the server sent
// before it has been handled by then (both servers send in order, one at a time).
func (r *rig) sentinel(srv *s3test.Server, bucket string) {
	r.t.Helper()
	key := fmt.Sprintf("zz-sentinel-%d", time.Now().UnixNano())
	srv.Put(r.t, bucket, key, "sentinel")
	r.waitFor("the sentinel "+key, func() bool {
		return slices.ContainsFunc(r.calls(), func(c call) bool { return c.rec.S3.Object.Key == key })
	})
	// The sentinel may have run before invocations submitted ahead of it.
	r.waitFor("every stored invocation to run", func() bool { return len(r.calls()) >= r.stored() })
}

// count is how many calls of type typ name key.
func (r *rig) count(typ, key string) int {
	n := 0
	for _, c := range r.calls() {
		if c.typ == typ && c.rec.S3.Object.Key == key {
			n++
		}
	}
	return n
}

func TestMinIOWebhook(t *testing.T) {
	r := newRig(t)
	const token = "hook-token-1234"
	srv := s3test.StartMinIO(t, s3test.MinIOOptions{Webhooks: map[string]s3test.Webhook{
		"fnhost": {Endpoint: r.hookURL(), AuthToken: token, NoQueue: true},
	}})
	srv.MakeBucket(t, "uploads")
	cfg := conn(srv, "uploads")
	cfg.Token = token
	cfg.Target = "fnhost" // the trigger adds the target to the bucket's notifications
	r.begin(cfg)
	r.start(cfg)

	etags := map[string]string{}
	for i, key := range oddKeys {
		etags[key] = srv.Put(t, "uploads", key, fmt.Sprintf("content %d of %q", i, key))
	}
	r.waitCalls(len(oddKeys))
	r.sentinel(srv, "uploads")
	for i, key := range oddKeys {
		if n := r.count("fnhost.s3.created", key); n != 1 {
			t.Errorf("%q: %d calls, want 1", key, n)
		}
		for _, c := range r.calls() {
			if c.rec.S3.Object.Key != key {
				continue
			}
			if want := fmt.Sprintf("content %d of %q", i, key); c.body != want {
				t.Errorf("%q: handler read %q through ObjectFrom, want %q", key, c.body, want)
			}
			if c.rec.S3.Object.ETag != strings.Trim(etags[key], `"`) || c.rec.EventSource != "minio:s3" || c.rec.EventName != "ObjectCreated:Put" {
				t.Errorf("%q: record %+v", key, c.rec)
			}
		}
	}

	// New content runs again; the same content again does not; a removal (not
	// watched) forgets the receipt, so the same content after it runs again.
	key := oddKeys[0]
	srv.Put(t, "uploads", key, "new content")
	srv.Put(t, "uploads", key, "new content")
	r.sentinel(srv, "uploads")
	if n := r.count("fnhost.s3.created", key); n != 2 {
		t.Errorf("after an overwrite and an identical re-upload: %d calls of %q, want 2", n, key)
	}
	srv.Remove(t, "uploads", key)
	srv.Put(t, "uploads", key, "new content")
	r.sentinel(srv, "uploads")
	if n := r.count("fnhost.s3.created", key); n != 3 {
		t.Errorf("after a removal and the same upload again: %d calls of %q, want 3", n, key)
	}
	if got, want := r.stored(), len(r.calls()); got != want {
		t.Errorf("store holds %d invocations, handler saw %d", got, want)
	}
}

func TestWebhookAuth(t *testing.T) {
	r := newRig(t)
	r.noRead, r.noWait = true, true
	cfg := manifest.S3Trigger{Bucket: "b", Events: []string{"created"}, Mode: "webhook", Token: "right-token", Reconcile: time.Hour,
		Endpoint: "http://127.0.0.1:1", AccessKey: "k", SecretKey: "s"} // nothing listens: the listing fails and retries
	r.begin(cfg)
	r.start(cfg)
	body := func(key string) string {
		return `{"Records":[{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put",
		  "s3":{"bucket":{"name":"b"},"object":{"key":"` + key + `","size":1,"eTag":"e1"}}}]}`
	}
	post := func(path, auth, body string) int {
		req, _ := http.NewRequest("POST", r.srv.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name, path, auth, body string
		want                   int
	}{
		{"no token", "/hooks/s3", "", body("forged1"), 401},
		{"wrong token", "/hooks/s3", "Bearer wrong-token", body("forged2"), 401},
		{"token of another length", "/hooks/s3", "Bearer right-token-and-more", body("forged3"), 401},
		{"wrong query token", "/hooks/s3?token=wrong", "", body("forged4"), 401},
		{"not a notification", "/hooks/s3", "Bearer right-token", `{"hello":"world"}`, 400},
		{"not JSON", "/hooks/s3", "Bearer right-token", `<xml/>`, 400},
		{"bad key encoding", "/hooks/s3", "Bearer right-token", body("a%zz"), 400},
		{"right token", "/hooks/s3", "Bearer right-token", body("good1"), 200},
		{"right query token", "/hooks/s3?token=right-token", "", body("good2"), 200},
		{"again", "/hooks/s3", "Bearer right-token", body("good1"), 200},
	} {
		if got := post(c.path, c.auth, c.body); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	r.waitCalls(2)
	time.Sleep(100 * time.Millisecond) // give a wrongly accepted request the chance to show
	if got := r.keys(); !slices.Equal(got, []string{"fnhost.s3.created good1 e1", "fnhost.s3.created good2 e1"}) {
		t.Errorf("calls = %q, want good1 and good2 once each", got)
	}
	if n := r.stored(); n != 2 {
		t.Errorf("store holds %d invocations, want 2: refused requests store nothing", n)
	}
}

// TestMinIODowntime: objects put and removed while the trigger is stopped are found by
// the listing at its start, each exactly once.
func TestMinIODowntime(t *testing.T) {
	r := newRig(t)
	srv := s3test.StartMinIO(t, s3test.MinIOOptions{Webhooks: map[string]s3test.Webhook{
		"fnhost": {Endpoint: r.hookURL(), NoQueue: true},
	}})
	srv.MakeBucket(t, "inbox")
	srv.SetWebhookNotification(t, "inbox", "fnhost")
	cfg := conn(srv, "inbox")
	cfg.Events = []string{"created", "removed"}
	r.begin(cfg)
	stop := r.start(cfg)
	for i := range 5 {
		srv.Put(t, "inbox", fmt.Sprintf("before/%d", i), "x")
	}
	r.waitCalls(5)
	stop()

	for i := range 50 {
		srv.Put(t, "inbox", fmt.Sprintf("during/%02d name with space+plus", i), fmt.Sprint(i))
	}
	srv.Remove(t, "inbox", "before/0")
	srv.Remove(t, "inbox", "before/1")

	r.start(cfg)
	r.waitCalls(5 + 50 + 2)
	r.sentinel(srv, "inbox")
	for i := range 50 {
		key := fmt.Sprintf("during/%02d name with space+plus", i)
		if n := r.count("fnhost.s3.created", key); n != 1 {
			t.Errorf("%q: %d calls, want 1", key, n)
		}
	}
	for _, key := range []string{"before/0", "before/1"} {
		if n := r.count("fnhost.s3.removed", key); n != 1 {
			t.Errorf("%q removed while down: %d removed calls, want 1", key, n)
		}
	}
	for i := 2; i < 5; i++ {
		if n := r.count("fnhost.s3.created", fmt.Sprintf("before/%d", i)); n != 1 {
			t.Errorf("before/%d: %d calls, want 1 (it was there before the stop)", i, n)
		}
	}
	if got := len(r.calls()); got != 5+50+2+1 {
		t.Errorf("%d calls, want %d: %q", got, 5+50+2+1, r.keys())
	}
}

func TestVersityGWWebhook(t *testing.T) {
	// versitygw posts a test event at start, so the rig's server must listen first.
	r := newRig(t)
	srv := s3test.StartVersityGW(t, s3test.VersityGWOptions{WebhookURL: r.hookURL()})
	srv.MakeBucket(t, "photos")
	cfg := conn(srv, "photos")
	cfg.Events = []string{"created", "removed"}
	r.begin(cfg)
	r.start(cfg)
	for _, key := range oddKeys {
		srv.Put(t, "photos", key, "v1 "+key)
	}
	r.waitCalls(len(oddKeys))
	srv.Remove(t, "photos", oddKeys[0])
	r.waitFor("the removal", func() bool { return r.count("fnhost.s3.removed", oddKeys[0]) == 1 })
	for _, key := range oddKeys {
		if n := r.count("fnhost.s3.created", key); n != 1 {
			t.Errorf("%q: %d calls, want 1", key, n)
		}
	}
	for _, c := range r.calls() {
		if c.typ == "fnhost.s3.created" && c.body != "v1 "+c.rec.S3.Object.Key {
			t.Errorf("%q: handler read %q", c.rec.S3.Object.Key, c.body)
		}
	}
}

func TestVersityGWPoll(t *testing.T) {
	r := newRig(t)
	srv := s3test.StartVersityGW(t, s3test.VersityGWOptions{})
	srv.MakeBucket(t, "poll")
	cfg := conn(srv, "poll")
	cfg.Mode = "poll"
	cfg.Prefix = "in/"
	cfg.Events = []string{"created", "removed"}
	cfg.Download = true
	r.begin(cfg)
	stop := r.start(cfg)
	for _, key := range oddKeys {
		srv.Put(t, "poll", "in/"+key, "poll "+key)
	}
	srv.Put(t, "poll", "out/ignored", "not under the prefix")
	r.waitCalls(len(oddKeys))
	srv.Put(t, "poll", "in/"+oddKeys[1], "changed")
	srv.Remove(t, "poll", "in/"+oddKeys[2])
	r.waitFor("the change and the removal", func() bool {
		return r.count("fnhost.s3.created", "in/"+oddKeys[1]) == 2 && r.count("fnhost.s3.removed", "in/"+oddKeys[2]) == 1
	})
	stop()
	before := len(r.calls())
	// A restarted poller finds nothing new.
	srv.Put(t, "poll", "in/after-restart", "new")
	r.start(cfg)
	r.waitFor("the object put after the restart", func() bool { return r.count("fnhost.s3.created", "in/after-restart") == 1 })
	time.Sleep(300 * time.Millisecond) // three more polls
	if got := len(r.calls()); got != before+1 {
		t.Errorf("after the restart: %d calls, want %d: %q", got, before+1, r.keys())
	}
	for _, c := range r.calls() {
		if strings.HasPrefix(c.rec.S3.Object.Key, "out/") {
			t.Errorf("an object outside the prefix ran: %q", c.rec.S3.Object.Key)
		}
		if c.typ != "fnhost.s3.created" {
			continue
		}
		if c.file != c.body || c.path == "" {
			t.Errorf("%q: downloaded file %q (at %q), object %q", c.rec.S3.Object.Key, c.file, c.path, c.body)
		}
		if _, err := os.Stat(c.path); !os.IsNotExist(err) {
			t.Errorf("%q: the downloaded file %s is still there after the attempt: %v", c.rec.S3.Object.Key, c.path, err)
		}
	}
}

// TestMinIOListen runs the listen mode. The MinIO server the tests build delivers its
// listen stream only when the connection closes, so what this shows is that the mode
// works through its reconciliation (every second here) and that stream records and
// listings never run an object twice.
func TestMinIOListen(t *testing.T) {
	r := newRig(t)
	srv := s3test.StartMinIO(t, s3test.MinIOOptions{})
	srv.MakeBucket(t, "listen")
	cfg := conn(srv, "listen")
	cfg.Mode = "listen"
	cfg.Reconcile = time.Second
	r.begin(cfg)
	r.start(cfg)
	for i := range 10 {
		srv.Put(t, "listen", fmt.Sprintf("k %d", i), "x")
	}
	r.waitCalls(10)
	time.Sleep(1500 * time.Millisecond) // one more reconciliation
	for i := range 10 {
		if n := r.count("fnhost.s3.created", fmt.Sprintf("k %d", i)); n != 1 {
			t.Errorf("k %d: %d calls, want 1", i, n)
		}
	}
}
