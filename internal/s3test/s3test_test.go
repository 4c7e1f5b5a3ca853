package s3test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// receiver records the bucket notifications POSTed to it.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []event
}

type event struct {
	name, key, auth string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var n struct {
			Records []struct {
				EventName string `json:"eventName"`
				S3        struct {
					Object struct {
						Key string `json:"key"`
					} `json:"object"`
				} `json:"s3"`
			}
		}
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("receiver: %v: %s", err, body)
		}
		r.mu.Lock()
		for _, rec := range n.Records {
			r.events = append(r.events, event{rec.EventName, rec.S3.Object.Key, req.Header.Get("Authorization")})
		}
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// wait returns the events received once there are n of them.
func (r *receiver) wait(t *testing.T, n int) []event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]event(nil), r.events...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events %v, want %d", len(got), got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exercise creates a bucket, puts an object and removes it, checking each step.
func exercise(t *testing.T, s *Server, bucket, key string) {
	ctx := context.Background()
	s.MakeBucket(t, bucket)
	etag := s.Put(t, bucket, key, "hello")
	if etag != "5d41402abc4b2a76b9719d911017c592" { // md5("hello")
		t.Errorf("Put returned ETag %q", etag)
	}
	obj, err := s.Client().GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("get %s/%s: %q, %v", bucket, key, body, err)
	}
	s.Remove(t, bucket, key)
	if _, err := s.Client().StatObject(ctx, bucket, key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("stat after Remove: %v, want NoSuchKey", err)
	}
}

func TestMinIO(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	s := StartMinIO(t, MinIOOptions{Webhooks: map[string]Webhook{
		"FNHOST": {Endpoint: rcv.URL + "/hook", AuthToken: "tok"},
	}})
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") || s.Region != "us-east-1" {
		t.Errorf("server %v, region %q", s, s.Region)
	}
	s.MakeBucket(t, "events")
	s.SetWebhookNotification(t, "events", "FNHOST")
	exercise(t, s, "plain", "a b/ü.txt")
	s.Put(t, "events", "a b.txt", "x")
	s.Remove(t, "events", "a b.txt")
	got := rcv.wait(t, 2)
	want := []event{{"s3:ObjectCreated:Put", "a+b.txt", "Bearer tok"}, {"s3:ObjectRemoved:Delete", "a+b.txt", "Bearer tok"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("events %v, want %v", got, want)
	}

	s.Restart(t)
	if _, err := s.Client().BucketExists(context.Background(), "plain"); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	s.Stop()
	s.Stop()
}

func TestVersityGW(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	s := StartVersityGW(t, VersityGWOptions{WebhookURL: rcv.URL + "/hook", Events: []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}})
	exercise(t, s, "plain", "a b/ü.txt")
	got := rcv.wait(t, 2)
	want := []event{{"s3:ObjectCreated:Put", "a b/ü.txt", ""}, {"s3:ObjectRemoved:Delete", "a b/ü.txt", ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	m := StartMinIO(t, MinIOOptions{Region: "eu-west-1", AccessKey: "fnhostkey", SecretKey: "fnhostsecret", Webhooks: map[string]Webhook{
		"NOQ": {Endpoint: rcv.URL, NoQueue: true},
	}})
	if m.Region != "eu-west-1" || m.AccessKey != "fnhostkey" {
		t.Errorf("region %q, access key %q", m.Region, m.AccessKey)
	}
	m.MakeBucket(t, "regional")
	m.SetWebhookNotification(t, "regional", "NOQ", "s3:ObjectCreated:Put")
	m.Put(t, "regional", "k", "v")
	m.Remove(t, "regional", "k") // not subscribed
	m.Put(t, "regional", "k2", "v")
	if got := rcv.wait(t, 2); got[0] != (event{"s3:ObjectCreated:Put", "k", ""}) || got[1].key != "k2" {
		t.Errorf("events %v", got)
	}

	v := StartVersityGW(t, VersityGWOptions{Versioning: true})
	v.MakeBucket(t, "versioned")
	if err := v.Client().EnableVersioning(context.Background(), "versioned"); err != nil {
		t.Fatal(err)
	}
}

// fakeTB records whether Fatal or Skip was called.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatal(args ...any)     { f.fatal = args[0].(string); runtime.Goexit() }
func (f *fakeTB) Skip(args ...any)      { f.skip = args[0].(string); runtime.Goexit() }
func (f *fakeTB) Fatalf(string, ...any) { panic("unexpected Fatalf") }

func TestMissingBinary(t *testing.T) {
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			findBinary(f, "fnhost-no-such-server", "FNHOST_NO_SUCH_SERVER")
		}()
		<-done
		msg := f.skip
		if ci == "true" {
			msg = f.fatal
		}
		if msg == "" || !strings.Contains(msg, "scripts/tools.sh") {
			t.Errorf("CI=%q: fatal %q, skip %q", ci, f.fatal, f.skip)
		}
	}
}
