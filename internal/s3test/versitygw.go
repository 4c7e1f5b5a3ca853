package s3test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// VersityGWOptions configures StartVersityGW. The zero value is a gateway with
// random credentials and no event notifications.
type VersityGWOptions struct {
	// AccessKey and SecretKey are the root account's keys; empty means random ones (see
	// Server.AccessKey).
	AccessKey string
	SecretKey string
	// Region is the gateway's region; empty means us-east-1.
	Region string
	// WebhookURL, when set, is where the gateway POSTs the events of every bucket
	// (--event-webhook-url; versitygw has no per-bucket notification configuration).
	// Something must listen there before the start: versitygw POSTs an s3:TestEvent when
	// it starts and exits when the connection is refused. It sends no Authorization
	// header and never retries.
	WebhookURL string
	// Events, when set, are the only events sent to WebhookURL (--event-filter), e.g.
	// "s3:ObjectCreated:*" or "s3:ObjectRemoved:Delete". Empty means every event.
	Events []string
	// Versioning gives the gateway a versioning directory, so that buckets can have
	// versioning turned on.
	Versioning bool
	// Args are more global options, placed before the posix command.
	Args []string
	// Env is added to the server's environment (VGW_* variables of the test's own
	// environment are not passed on).
	Env []string
}

// healthPath is versitygw's health check; no bucket name starts with "_".
const healthPath = "/_health"

// StartVersityGW starts a versitygw S3 gateway with the posix backend on a temporary
// directory, on 127.0.0.1, waits until its health check answers, and stops it when the
// test ends. The server's output goes to the test log when the test fails.
func StartVersityGW(t testing.TB, opts VersityGWOptions) *Server {
	t.Helper()
	bin := findBinary(t, "versitygw", "FNHOST_VERSITYGW")
	s, args, err := newVersityGW(bin, opts, testDir(t))
	if err != nil {
		t.Fatal(err.Error())
	}
	launch(t, s, args, healthPath)
	return s
}

// LaunchVersityGW starts a versitygw gateway as StartVersityGW does, for a program that
// is no test; Close stops it and removes its data. When there is no versitygw binary
// the error wraps ErrNoBinary.
func LaunchVersityGW(opts VersityGWOptions) (*Server, error) {
	bin, err := lookBinary("versitygw", "FNHOST_VERSITYGW")
	if err != nil {
		return nil, err
	}
	return launchOwn("versitygw", func(tempDir func() (string, error)) (*Server, func(string) ([]string, error), error) {
		return newVersityGW(bin, opts, tempDir)
	}, healthPath)
}

// newVersityGW makes the versitygw gateway of opts and the arguments it starts with.
func newVersityGW(bin string, opts VersityGWOptions, tempDir func() (string, error)) (*Server, func(addr string) ([]string, error), error) {
	dir, err := tempDir()
	if err != nil {
		return nil, nil, err
	}
	s := &Server{
		Kind:      "versitygw",
		AccessKey: or(opts.AccessKey, randomKey("fnhost")),
		SecretKey: or(opts.SecretKey, randomKey("secret")),
		Region:    or(opts.Region, DefaultRegion),
		Dir:       dir,
		bin:       bin,
	}
	global := []string{
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--health", healthPath,
	}
	if opts.WebhookURL != "" {
		if err := checkURL("webhook URL", opts.WebhookURL); err != nil {
			return nil, nil, err
		}
		global = append(global, "--event-webhook-url", opts.WebhookURL)
	}
	if len(opts.Events) > 0 {
		filter := map[string]bool{}
		for _, e := range opts.Events {
			filter[e] = true
		}
		b, err := json.Marshal(filter)
		if err != nil {
			return nil, nil, err
		}
		fdir, err := tempDir()
		if err != nil {
			return nil, nil, err
		}
		path := filepath.Join(fdir, "event-filter.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, nil, err
		}
		global = append(global, "--event-filter", path)
	}
	global = append(global, opts.Args...)
	posix := []string{"posix"}
	if opts.Versioning {
		vdir, err := tempDir()
		if err != nil {
			return nil, nil, err
		}
		posix = append(posix, "--versioning-dir", vdir)
	}
	posix = append(posix, s.Dir)
	s.env = environ([]string{"VGW_", "ROOT_ACCESS_KEY", "ROOT_SECRET", "WEBHOOK=", "LOGFILE="}, opts.Env...)
	return s, func(addr string) ([]string, error) {
		args := append([]string{"--port", addr}, global...)
		return append(args, posix...), nil
	}, nil
}
