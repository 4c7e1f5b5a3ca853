// Package s3test starts real S3 servers (MinIO and versitygw) on 127.0.0.1 for the tests
// of the S3 trigger, and stops them when the test ends. LaunchMinIO and LaunchVersityGW
// start the same servers for programs that are no tests (the benchmark), which stop
// them with Close.
//
// The server binaries are looked up, in order, in $FNHOST_MINIO or $FNHOST_VERSITYGW,
// in .cache/bin of the repository (scripts/tools.sh installs them there), in
// ${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/bin (the per-user cache scripts/tools.sh
// fills), and in PATH. When a binary is missing the test is skipped, or fails when the
// environment has CI=true; Launch returns an error that wraps ErrNoBinary.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/internal/testproc"
)

// DefaultRegion is the region of the servers unless the options set another.
const DefaultRegion = "us-east-1"

// readyTimeout bounds how long a server may take to answer its health check.
const readyTimeout = time.Minute

// stopTimeout is how long a server has to exit after SIGTERM before it gets SIGKILL.
const stopTimeout = 5 * time.Second

// Server is a running S3 server.
type Server struct {
	// Kind is "minio" or "versitygw".
	Kind string
	// Endpoint is the S3 endpoint, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root credentials: random ones unless the options
	// set them, so that each server accepts only its own clients.
	AccessKey string
	SecretKey string
	// Region is the region to sign requests for (DefaultRegion unless the options set
	// another).
	Region string
	// Dir is the directory the server keeps its buckets in.
	Dir string

	bin   string
	args  []string
	env   []string
	ready string // health check URL
	log   *testlog.Buffer
	// own is the directory that Close removes: the one Launch made for the server.
	own string
	// targets are the IDs of MinIO's webhook targets, which readiness waits for.
	targets []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited <-chan struct{}
	client *minio.Client
}

// String names the server in messages.
func (s *Server) String() string {
	return s.Kind + " at " + s.Endpoint
}

// Host returns the host:port of Endpoint.
func (s *Server) Host() string {
	return strings.TrimPrefix(s.Endpoint, "http://")
}

// Output returns the server's command lines and everything it has written to stdout and
// stderr so far. It is also written to the test log when the test fails.
func (s *Server) Output() string {
	return s.log.String()
}

// Client returns a minio-go client for the server, signed with the root credentials.
func (s *Server) Client() *minio.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		c, err := minio.New(s.Host(), &minio.Options{
			Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
			Region: s.Region,
		})
		if err != nil {
			panic(fmt.Sprintf("s3test: minio-go client for %s: %v", s.Endpoint, err))
		}
		s.client = c
	}
	return s.client
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client().MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("s3test: %s: make bucket %q: %v", s.Kind, name, err)
	}
}

// Put writes an object and returns its ETag (without quotes).
func (s *Server) Put(t testing.TB, bucket, key, body string) (etag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := s.Client().PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("s3test: %s: put %s/%s: %v", s.Kind, bucket, key, err)
	}
	return strings.Trim(info.ETag, `"`)
}

// Remove deletes an object.
func (s *Server) Remove(t testing.TB, bucket, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client().RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("s3test: %s: remove %s/%s: %v", s.Kind, bucket, key, err)
	}
}

// WebhookARN is the ARN under which MinIO knows the webhook target with the given ID.
func WebhookARN(targetID string) string {
	return "arn:minio:sqs::" + targetID + ":webhook"
}

// SetWebhookNotification makes MinIO send the events of bucket to the webhook target
// targetID (a key of MinIOOptions.Webhooks). No events means s3:ObjectCreated:* and
// s3:ObjectRemoved:*. It replaces the bucket's notification configuration. versitygw has
// no per-bucket configuration (its webhook is VersityGWOptions.WebhookURL), so there it
// fails the test.
func (s *Server) SetWebhookNotification(t testing.TB, bucket, targetID string, events ...string) {
	t.Helper()
	if s.Kind != "minio" {
		t.Fatalf("s3test: %s has no bucket notification configuration; set VersityGWOptions.WebhookURL instead", s.Kind)
	}
	if len(events) == 0 {
		events = []string{string(notification.ObjectCreatedAll), string(notification.ObjectRemovedAll)}
	}
	qc := notification.NewConfig(notification.NewArn("minio", "sqs", "", targetID, "webhook"))
	for _, e := range events {
		qc.AddEvents(notification.EventType(e))
	}
	var cfg notification.Configuration
	cfg.AddQueue(qc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client().SetBucketNotification(ctx, bucket, cfg); err != nil {
		t.Fatalf("s3test: minio: set notification of bucket %q to webhook target %q: %v", bucket, targetID, err)
	}
}

// Stop stops the server: SIGTERM to its process group, SIGKILL after 5 s. Stopping a
// stopped server does nothing. The test's cleanup stops the server too.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	testproc.Stop(cmd, exited, syscall.SIGTERM, stopTimeout)
}

// Close stops the server and, for a server that Launch started, removes its
// directories.
func (s *Server) Close() {
	s.Stop()
	if s.own != "" {
		_ = os.RemoveAll(s.own)
	}
}

// Restart stops the server and starts it again on the same port and directories, so
// buckets, objects and MinIO's event queue survive.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("s3test: restart %s: %v", s.Kind, err)
	}
}

// start runs the server process and waits until its health check answers 200.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = s.env
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	fmt.Fprintf(s.log, "s3test: %s %s\n", s.bin, strings.Join(s.args, " "))
	exited, err := testproc.Start(cmd)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		if s.answers(hc) {
			return nil
		}
		select {
		case <-exited:
			s.Stop()
			return fmt.Errorf("%s exited before it was ready (%v)", s.Kind, cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("%s did not answer %s within %v", s.Kind, s.ready, readyTimeout)
		}
	}
}

// answers reports whether the health check answers 200, a request signed with the
// server's keys succeeds (the keys are unique, so another server that took the port in
// between does not pass for this one), and the webhook targets are loaded.
func (s *Server) answers(hc *http.Client) bool {
	resp, err := hc.Get(s.ready)
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err = s.Client().ListBuckets(ctx); err != nil {
		return false
	}
	return s.targetsLoaded(ctx) == nil
}

// probeBucket is the bucket that targetsLoaded uses, and removes.
const probeBucket = "s3test-probe"

// targetsLoaded checks that MinIO knows the ARN of every webhook target: it loads them
// in the background after it starts answering, and a bucket's notification that names
// one it has not loaded yet is refused. It sets and clears the notification of a bucket
// of its own, which it then removes.
func (s *Server) targetsLoaded(ctx context.Context) error {
	if len(s.targets) == 0 {
		return nil
	}
	c := s.Client()
	if err := c.MakeBucket(ctx, probeBucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		if resp := minio.ToErrorResponse(err); resp.Code != "BucketAlreadyOwnedByYou" {
			return err
		}
	}
	var cfg notification.Configuration
	for _, id := range s.targets {
		qc := notification.NewConfig(notification.NewArn("minio", "sqs", "", id, "webhook"))
		qc.AddEvents(notification.ObjectCreatedAll)
		qc.AddFilterPrefix(id + "/") // one rule per target: their filters must not overlap
		cfg.AddQueue(qc)
	}
	if err := c.SetBucketNotification(ctx, probeBucket, cfg); err != nil {
		return err
	}
	if err := c.RemoveAllBucketNotification(ctx, probeBucket); err != nil {
		return err
	}
	return c.RemoveBucket(ctx, probeBucket)
}

// launch starts s with the arguments args(port) on a free port, trying other ports when
// the chosen one was taken in between, and registers the cleanup that stops it.
func launch(t testing.TB, s *Server, args func(addr string) ([]string, error), readyPath string) {
	t.Helper()
	s.log = &testlog.Buffer{}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("s3test: %s output:\n%s", s.Kind, s.Output())
		}
	})
	if err := s.launch(args, readyPath); err != nil {
		t.Fatalf("s3test: start %s: %v", s.Kind, err)
	}
}

// launch starts s with the arguments args(port) on a free port, trying other ports when
// the chosen one was taken in between.
func (s *Server) launch(args func(addr string) ([]string, error), readyPath string) error {
	var err error
	for range 3 {
		var addr string
		if addr, err = testproc.FreeAddr(); err != nil {
			return err
		}
		s.Endpoint = "http://" + addr
		s.ready = s.Endpoint + readyPath
		if s.args, err = args(addr); err != nil {
			return err
		}
		s.mu.Lock()
		s.client = nil // for the new port
		s.mu.Unlock()
		before := len(s.Output())
		if err = s.start(); err == nil {
			return nil
		}
		if !strings.Contains(s.Output()[before:], "already in use") {
			break
		}
	}
	return err
}

// builder makes a server that is not started yet and the arguments it starts with on
// addr; tempDir makes the directories it keeps its data in.
type builder func(tempDir func() (string, error)) (*Server, func(addr string) ([]string, error), error)

// launchOwn starts the server that build makes, for Launch: its directories are made in
// one that Close removes.
func launchOwn(kind string, build builder, readyPath string) (*Server, error) {
	own, err := os.MkdirTemp("", "fnhost-"+kind+"-")
	if err != nil {
		return nil, err
	}
	s, args, err := build(func() (string, error) { return os.MkdirTemp(own, "") })
	if err != nil {
		_ = os.RemoveAll(own)
		return nil, err
	}
	s.own, s.log = own, &testlog.Buffer{}
	if err := s.launch(args, readyPath); err != nil {
		s.Close()
		return nil, fmt.Errorf("s3test: start %s: %w\n%s", kind, err, s.Output())
	}
	return s, nil
}

// testDir is the tempDir function of a test: t.TempDir, which never fails.
func testDir(t testing.TB) func() (string, error) {
	return func() (string, error) { return t.TempDir(), nil }
}

// environ is the test's environment without the variables whose names start with one of
// prefixes, plus extra.
func environ(prefixes []string, extra ...string) []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// ErrNoBinary is what the errors of LaunchMinIO and LaunchVersityGW wrap when the
// server's binary is not installed.
var ErrNoBinary = errors.New("s3test: server binary not installed")

// findBinary returns the path of the server binary name, or skips (fails under CI=true)
// the test when there is none.
func findBinary(t testing.TB, name, envVar string) string {
	t.Helper()
	p, err := lookBinary(name, envVar)
	if err != nil {
		testproc.SkipOrFail(t, err)
	}
	return p
}

// lookBinary returns the path of the server binary name.
func lookBinary(name, envVar string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if testproc.IsExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("s3test: $%s is %q, which is no executable file", envVar, p)
	}
	looked := []string{"$" + envVar}
	if root, ok := repoRoot(); ok {
		p := filepath.Join(root, ".cache", "bin", name)
		if testproc.IsExecutable(p) {
			return p, nil
		}
		looked = append(looked, p)
	}
	if dir := sharedCache(); dir != "" {
		p := filepath.Join(dir, name)
		if testproc.IsExecutable(p) {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	looked = append(looked, "PATH")
	return "", testproc.Missing{Is: ErrNoBinary, Msg: fmt.Sprintf("s3test: no %s binary (looked in %s); run scripts/tools.sh (or make test) to install %s", name, strings.Join(looked, ", "), name)}
}

// sharedCache is the per-user directory scripts/tools.sh builds the servers into:
// ${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/bin.
func sharedCache() string {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "fnhost", "bin")
}

// repoRoot is the nearest directory at or above the working directory with a go.mod.
func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// randomKey returns prefix followed by 16 random hex digits.
func randomKey(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// checkURL says what is wrong when u is no absolute http(s) URL.
func checkURL(what, u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("s3test: %s %q is no http(s) URL", what, u)
	}
	return nil
}
