package s3test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/fnhost/fnhost/internal/testproc"
)

// MinIOOptions configures StartMinIO. The zero value is a MinIO with random
// credentials and no notification targets.
type MinIOOptions struct {
	// AccessKey and SecretKey are the root user and password; empty means random ones
	// (see Server.AccessKey). MinIO wants a secret of 8 characters or more.
	AccessKey string
	SecretKey string
	// Region, when set, becomes MINIO_SITE_REGION (and then the awsRegion of the event
	// records). Empty leaves MinIO at its default: it signs as us-east-1 and writes an
	// empty awsRegion into the event records.
	Region string
	// Webhooks are the webhook notification targets by ID (letters, digits and
	// underscores). A bucket sends its events to one with SetWebhookNotification.
	Webhooks map[string]Webhook
	// Env is added to the server's environment (MINIO_* variables of the test's own
	// environment are not passed on).
	Env []string
}

// Webhook is a MinIO webhook notification target.
type Webhook struct {
	// Endpoint is the URL MinIO POSTs each event to.
	Endpoint string
	// AuthToken, when set, is sent as "Authorization: Bearer <AuthToken>" (verbatim
	// when it already has the form "<scheme> <token>").
	AuthToken string
	// QueueDir is where MinIO keeps the events it has not delivered yet, so that none is
	// lost while the receiver is down or failing; empty means a new temporary
	// directory. A queued target delivers within about 3 s and retries every 3 s.
	QueueDir string
	// NoQueue turns the queue off: MinIO then sends each event once, at once, and an
	// event the receiver does not accept is lost.
	NoQueue bool
}

var targetIDPattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// minioReady is MinIO's health check.
const minioReady = "/minio/health/live"

// StartMinIO starts a single-drive MinIO server on 127.0.0.1 with its data in a
// temporary directory, waits until /minio/health/live answers, and stops it when the test
// ends. The server's output goes to the test log when the test fails.
func StartMinIO(t testing.TB, opts MinIOOptions) *Server {
	t.Helper()
	bin := findBinary(t, "minio", "FNHOST_MINIO")
	s, args, err := newMinIO(bin, opts, testDir(t))
	if err != nil {
		t.Fatal(err.Error())
	}
	launch(t, s, args, minioReady)
	return s
}

// LaunchMinIO starts a MinIO server as StartMinIO does, for a program that is no test;
// Close stops it and removes its data. When there is no minio binary the error wraps
// ErrNoBinary.
func LaunchMinIO(opts MinIOOptions) (*Server, error) {
	bin, err := lookBinary("minio", "FNHOST_MINIO")
	if err != nil {
		return nil, err
	}
	return launchOwn("minio", func(tempDir func() (string, error)) (*Server, func(string) ([]string, error), error) {
		return newMinIO(bin, opts, tempDir)
	}, minioReady)
}

// newMinIO makes the MinIO server of opts and the arguments it starts with.
func newMinIO(bin string, opts MinIOOptions, tempDir func() (string, error)) (*Server, func(addr string) ([]string, error), error) {
	s := &Server{
		Kind:      "minio",
		AccessKey: or(opts.AccessKey, randomKey("fnhost")),
		SecretKey: or(opts.SecretKey, randomKey("secret")),
		Region:    or(opts.Region, DefaultRegion),
		bin:       bin,
	}
	env := []string{
		"MINIO_ROOT_USER=" + s.AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	}
	if opts.Region != "" {
		env = append(env, "MINIO_SITE_REGION="+opts.Region)
	}
	ids := make([]string, 0, len(opts.Webhooks))
	for id := range opts.Webhooks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	s.targets = ids
	for _, id := range ids {
		wh := opts.Webhooks[id]
		if !targetIDPattern.MatchString(id) {
			return nil, nil, fmt.Errorf("s3test: webhook target ID %q: want letters, digits and underscores", id)
		}
		if err := checkURL("webhook endpoint", wh.Endpoint); err != nil {
			return nil, nil, err
		}
		env = append(env,
			"MINIO_NOTIFY_WEBHOOK_ENABLE_"+id+"=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+id+"="+wh.Endpoint,
		)
		if wh.AuthToken != "" {
			env = append(env, "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+id+"="+wh.AuthToken)
		}
		if !wh.NoQueue {
			dir := wh.QueueDir
			if dir == "" {
				var err error
				if dir, err = tempDir(); err != nil {
					return nil, nil, err
				}
			}
			env = append(env, "MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_"+id+"="+dir)
		}
	}
	s.env = environ([]string{"MINIO_"}, append(env, opts.Env...)...)
	root, err := tempDir()
	if err != nil {
		return nil, nil, err
	}
	s.Dir = filepath.Join(root, "data")
	certs := filepath.Join(root, "certs")
	return s, func(addr string) ([]string, error) {
		console, err := testproc.FreeAddr()
		if err != nil {
			return nil, err
		}
		return []string{"server",
			"--address", addr,
			"--console-address", console,
			"--certs-dir", certs,
			s.Dir,
		}, nil
	}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
