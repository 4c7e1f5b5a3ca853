package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a lookup function over vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// parseErrors parses src, which must be invalid, and returns its problems.
func parseErrors(t *testing.T, src string, vars map[string]string) *Errors {
	t.Helper()
	m, err := Parse([]byte(src), "functions.yaml", env(vars))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; manifest: %+v", m)
	}
	if m != nil {
		t.Fatalf("Parse returned a manifest and an error")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	if len(errs.Problems) == 0 {
		t.Fatalf("*Errors holds no problem")
	}
	return errs
}

// mustParse parses src, which must be valid, as the file dir/functions.yaml.
func mustParse(t *testing.T, src string, vars map[string]string) *Manifest {
	t.Helper()
	m, err := Parse([]byte(src), filepath.Join(testDir, "functions.yaml"), env(vars))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

const testDir = "/srv/app"

// designExample is the manifest of DESIGN.md, as written there.
const designExample = `version: 1
host:
  listen: 127.0.0.1:8080            # one listener: HTTP triggers, /api/v1, /dashboard, /metrics
  storage: sqlite:.fnhost/fnhost.db  # default: a path, relative to this file or absolute;
                                    # postgres://user:pw@host:5432/db for several instances
  workers: 32                       # global cap on concurrent invocations
  api_key: ${FNHOST_API_KEY}        # required for /api/v1 and the dashboard unless listen is loopback
defaults:                           # applied to every function, each overridable per function
  timeout: 30s
  retry: {max_attempts: 5, backoff: exponential, initial_interval: 1s, max_interval: 5m}
functions:
  hello:
    handler: {builtin: echo}
    triggers:
      - http: {path: /hooks/hello, methods: [POST], mode: sync}
      - http:
          path: /hooks/github
          methods: [POST]
          mode: async
          auth: {hmac: {secret: ${GITHUB_WEBHOOK_SECRET}, header: X-Hub-Signature-256}}
          # or auth: {key: ${HOOK_KEY}}  (X-Fnhost-Key header or ?code=)
  thumbnail:
    handler: {exec: [python3, handlers/thumb.py]}
    timeout: 2m
    concurrency: 4                  # at most 4 of these at once, across the host
    triggers:
      - s3:
          endpoint: http://127.0.0.1:9000
          bucket: uploads
          prefix: images/
          suffix: .jpg
          events: [created]
          access_key: ${MINIO_ROOT_USER}
          secret_key: ${MINIO_ROOT_PASSWORD}
          mode: webhook             # webhook | listen | poll (with interval: 1s) | sqs
    then: [notify]                  # continuation: runs after success, gets this output
    on_failure: alert               # runs once when attempts are exhausted
  nightly-report:
    handler: {http: http://127.0.0.1:9001/report}
    triggers:
      - cron: {schedule: "0 2 * * *", timezone: Europe/Rome, missed: one, overlap: skip}
  csv-inbox:
    handler: {exec: [./handlers/import.sh]}
    triggers:
      - fs: {path: ./inbox, pattern: "*.csv", recursive: true, events: [created], settle: 500ms}
  orders:
    handler: {builtin: echo}
    triggers:
      - queue: {name: orders}
  notify:                           # no trigger: runs as a continuation, or when invoked
    handler: {http: http://127.0.0.1:9002/notify}
  alert:
    handler: {exec: [./handlers/page-oncall.sh]}
`

var designEnv = map[string]string{
	"FNHOST_API_KEY":        "api-key-0123456789",
	"GITHUB_WEBHOOK_SECRET": "gh-secret-0123456789",
	"MINIO_ROOT_USER":       "minio-user",
	"MINIO_ROOT_PASSWORD":   "minio-password-0123456789",
}

func TestDesignExample(t *testing.T) {
	t.Parallel()
	m := mustParse(t, designExample, designEnv)

	if m.Version != 1 || m.Path != "/srv/app/functions.yaml" || m.Dir != testDir {
		t.Errorf("version, path, dir = %d, %q, %q", m.Version, m.Path, m.Dir)
	}
	wantOrder := []string{"hello", "thumbnail", "nightly-report", "csv-inbox", "orders", "notify", "alert"}
	if !reflect.DeepEqual(m.Order, wantOrder) {
		t.Errorf("Order = %v, want %v", m.Order, wantOrder)
	}
	wantHost := Host{
		Listen: "127.0.0.1:8080", Storage: "sqlite:/srv/app/.fnhost/fnhost.db", Workers: 32,
		APIKey: "api-key-0123456789", LogFormat: "text", LogLevel: "info",
		Retention: 168 * time.Hour, Lease: 30 * time.Second, ShutdownTimeout: 30 * time.Second,
		MaxLogBytes: 65536, MaxBodyBytes: 1048576, Dashboard: Dashboard{Enabled: true},
	}
	if m.Host != wantHost {
		t.Errorf("Host = %#v\nwant %#v", m.Host, wantHost)
	}
	if m.Defaults.Timeout != 30*time.Second || m.Defaults.Retry != DefaultRetry() {
		t.Errorf("Defaults = %+v", m.Defaults)
	}

	hello, ok := m.Function("hello")
	if !ok {
		t.Fatal("no function hello")
	}
	if hello.Handler.Kind() != "builtin" || hello.Handler.Builtin != "echo" || hello.Handler.Dir != testDir {
		t.Errorf("hello handler = %+v", hello.Handler)
	}
	if hello.Timeout != 30*time.Second || hello.Retry != DefaultRetry() {
		t.Errorf("hello timeout/retry = %v %+v", hello.Timeout, hello.Retry)
	}
	if hello.Pos != (Position{File: "/srv/app/functions.yaml", Line: 12, Column: 3}) {
		t.Errorf("hello.Pos = %v", hello.Pos)
	}
	if len(hello.Triggers) != 2 {
		t.Fatalf("hello has %d triggers", len(hello.Triggers))
	}
	t0, t1 := hello.Triggers[0], hello.Triggers[1]
	if t0.Kind != "http" || t0.Pos.Line != 15 || t0.Pos.Column != 9 ||
		!reflect.DeepEqual(*t0.HTTP, HTTPTrigger{Path: "/hooks/hello", Methods: []string{"POST"}, Mode: "sync"}) {
		t.Errorf("hello trigger 0 = %+v %+v", t0, t0.HTTP)
	}
	if t1.HTTP.Mode != "async" || t1.HTTP.Auth.HMAC == nil ||
		t1.HTTP.Auth.HMAC.Secret.Reveal() != "gh-secret-0123456789" || t1.HTTP.Auth.HMAC.Header != "X-Hub-Signature-256" {
		t.Errorf("hello trigger 1 = %+v %+v", t1.HTTP, t1.HTTP.Auth.HMAC)
	}

	th := m.Functions["thumbnail"]
	if !reflect.DeepEqual(th.Handler.Exec, []string{"python3", "handlers/thumb.py"}) || th.Handler.GracePeriod != 5*time.Second {
		t.Errorf("thumbnail handler = %+v", th.Handler)
	}
	if th.Timeout != 2*time.Minute || th.Concurrency != 4 || !reflect.DeepEqual(th.Then, []string{"notify"}) || th.OnFailure != "alert" {
		t.Errorf("thumbnail = %+v", th)
	}
	s3 := th.Triggers[0].S3
	wantS3 := S3Trigger{
		Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", Bucket: "uploads", Prefix: "images/", Suffix: ".jpg",
		Events: []string{"created"}, AccessKey: "minio-user", SecretKey: "minio-password-0123456789",
		Mode: "webhook", Interval: time.Second, Reconcile: 5 * time.Minute,
	}
	if !reflect.DeepEqual(*s3, wantS3) {
		t.Errorf("s3 = %+v\nwant %+v", *s3, wantS3)
	}

	cron := m.Functions["nightly-report"].Triggers[0].Cron
	if *cron != (CronTrigger{Schedule: "0 2 * * *", Timezone: "Europe/Rome", Missed: "one", Overlap: "skip"}) {
		t.Errorf("cron = %+v", *cron)
	}
	if h := m.Functions["nightly-report"].Handler; h.Kind() != "http" || h.HTTP != "http://127.0.0.1:9001/report" {
		t.Errorf("nightly-report handler = %+v", h)
	}

	csv := m.Functions["csv-inbox"]
	if !reflect.DeepEqual(csv.Handler.Exec, []string{"/srv/app/handlers/import.sh"}) {
		t.Errorf("csv-inbox exec = %v", csv.Handler.Exec)
	}
	wantFS := FSTrigger{Path: "/srv/app/inbox", Pattern: "*.csv", Recursive: true, Events: []string{"created"},
		Settle: 500 * time.Millisecond, Rescan: 30 * time.Second}
	if !reflect.DeepEqual(*csv.Triggers[0].FS, wantFS) {
		t.Errorf("fs = %+v", *csv.Triggers[0].FS)
	}
	if q := m.Functions["orders"].Triggers[0].Queue; q.Name != "orders" {
		t.Errorf("queue = %+v", q)
	}
	if n := m.Functions["notify"]; len(n.Triggers) != 0 {
		t.Errorf("notify triggers = %v", n.Triggers)
	}
}

func TestDefaultsMerged(t *testing.T) {
	t.Parallel()
	src := `version: 1
host:
  storage: data/fn.db
  retention: 7d
  lease: 1m
  log: {format: json, level: debug}
  max_log_bytes: 1_024
  dashboard: {read_only: true}
defaults:
  timeout: 10s
  retry:
    max_attempts: 3
    initial_interval: 2s
    jitter: 0
functions:
  plain:
    handler: {builtin: echo}
  custom:
    handler: {builtin: echo}
    timeout: 1d12h
    retry: {max_attempts: 7, backoff: fixed}
`
	m := mustParse(t, src, nil)
	if m.Host.Storage != "sqlite:/srv/app/data/fn.db" || m.Host.Retention != 7*24*time.Hour || m.Host.Lease != time.Minute ||
		m.Host.LogFormat != "json" || m.Host.LogLevel != "debug" || m.Host.MaxLogBytes != 1024 ||
		m.Host.Dashboard != (Dashboard{Enabled: true, ReadOnly: true}) {
		t.Errorf("host = %+v", m.Host)
	}
	wantDefaults := Retry{MaxAttempts: 3, Backoff: "exponential", InitialInterval: 2 * time.Second, MaxInterval: 5 * time.Minute, Jitter: 0}
	if m.Defaults.Retry != wantDefaults || m.Defaults.Timeout != 10*time.Second {
		t.Errorf("defaults = %+v", m.Defaults)
	}
	if p := m.Functions["plain"]; p.Retry != wantDefaults || p.Timeout != 10*time.Second {
		t.Errorf("plain = %+v %v", p.Retry, p.Timeout)
	}
	wantCustom := Retry{MaxAttempts: 7, Backoff: "fixed", InitialInterval: 2 * time.Second, MaxInterval: 5 * time.Minute, Jitter: 0}
	if c := m.Functions["custom"]; c.Retry != wantCustom || c.Timeout != 36*time.Hour {
		t.Errorf("custom = %+v %v", c.Retry, c.Timeout)
	}
}

func TestStorage(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"sqlite:.fnhost/fnhost.db":         "sqlite:/srv/app/.fnhost/fnhost.db",
		"sqlite:/var/lib/fnhost.db":        "sqlite:/var/lib/fnhost.db",
		"sqlite:///var/lib/fnhost.db":      "sqlite:/var/lib/fnhost.db",
		"SQLite:x.db":                      "sqlite:/srv/app/x.db",
		"state/fn.db":                      "sqlite:/srv/app/state/fn.db",
		"/abs/fn.db":                       "sqlite:/abs/fn.db",
		"sqlite::memory:":                  "sqlite::memory:",
		"postgres://u:pw@db:5432/fn":       "postgres://u:pw@db:5432/fn",
		"postgresql://u@db/fn?sslmode=off": "postgresql://u@db/fn?sslmode=off",
		"Postgres://db/fn":                 "postgres://db/fn",
	}
	for in, want := range cases {
		m := mustParse(t, "version: 1\nhost: {storage: \""+in+"\"}\nfunctions: {a: {handler: {builtin: echo}}}\n", nil)
		if m.Host.Storage != want {
			t.Errorf("storage %q = %q, want %q", in, m.Host.Storage, want)
		}
	}
}

func TestListenAndAPIKey(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"127.0.0.1:9000", "localhost:80", "[::1]:8080", "127.0.0.2:0"} {
		m := mustParse(t, "version: 1\nhost: {listen: \""+listen+"\"}\nfunctions: {a: {handler: {builtin: echo}}}\n", nil)
		if m.Host.Listen != listen {
			t.Errorf("listen = %q", m.Host.Listen)
		}
	}
	m := mustParse(t, "version: 1\nhost: {listen: \":8080\", api_key: k}\nfunctions: {a: {handler: {builtin: echo}}}\n", nil)
	if m.Host.APIKey.Reveal() != "k" {
		t.Errorf("api_key = %q", m.Host.APIKey.Reveal())
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	src := `version: 1
host:
  workers: ${WORKERS:-8}
  max_body_bytes: "${BODY}"
  listen: ${HOST:-127.0.0.1}:${PORT:-8080}
defaults:
  timeout: ${TIMEOUT:-1m}
functions:
  a:
    description: "costs $$5, ${UNSET:-${NESTED:-nested default}}, $HOME stays, $${NOT} expanded"
    handler:
      exec: [./run.sh, "${ARG}", "${EMPTY:-fallback}"]
      env: {TOKEN: "${TOKEN}", EMPTY: ""}
    triggers:
      - http: {path: /hooks/a, auth: {key: ${HOOK_KEY}}}
      - fs: {path: "${INBOX:-/tmp/in}", recursive: ${RECURSIVE:-false}}
`
	vars := map[string]string{"BODY": "2048", "PORT": "9999", "ARG": "x y", "EMPTY": "", "TOKEN": "tok", "HOOK_KEY": "hk", "RECURSIVE": "true"}
	m := mustParse(t, src, vars)
	if m.Host.Workers != 8 || m.Host.MaxBodyBytes != 2048 || m.Host.Listen != "127.0.0.1:9999" || m.Defaults.Timeout != time.Minute {
		t.Errorf("host = %+v, timeout %v", m.Host, m.Defaults.Timeout)
	}
	a := m.Functions["a"]
	if want := "costs $5, nested default, $HOME stays, ${NOT} expanded"; a.Description != want {
		t.Errorf("description = %q, want %q", a.Description, want)
	}
	if want := []string{"/srv/app/run.sh", "x y", "fallback"}; !reflect.DeepEqual(a.Handler.Exec, want) {
		t.Errorf("exec = %q, want %q", a.Handler.Exec, want)
	}
	if want := map[string]string{"TOKEN": "tok", "EMPTY": ""}; !reflect.DeepEqual(a.Handler.Env, want) {
		t.Errorf("env = %v", a.Handler.Env)
	}
	if a.Triggers[0].HTTP.Auth.Key.Reveal() != "hk" {
		t.Errorf("auth key = %q", a.Triggers[0].HTTP.Auth.Key.Reveal())
	}
	if fs := a.Triggers[1].FS; fs.Path != "/tmp/in" || !fs.Recursive {
		t.Errorf("fs = %+v", fs)
	}

	vars["WORKERS"] = "4"
	if m := mustParse(t, src, vars); m.Host.Workers != 4 {
		t.Errorf("workers with WORKERS=4: %d", m.Host.Workers)
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	lookup := env(map[string]string{"A": "a", "E": "", "B": "b"})
	cases := []struct {
		in, want string
		missing  []string
		err      string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "a"},
		{in: "x${A}y${B}z", want: "xaybz"},
		{in: "${E}", want: ""},
		{in: "${E:-d}", want: "d"},
		{in: "${U:-}", want: ""},
		{in: "${U:-d e f}", want: "d e f"},
		{in: "${U:-${A}}", want: "a"},
		{in: "${U:-${V:-{x}}}", want: "{x}"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$A $ $1 a$", want: "$A $ $1 a$"},
		{in: "${U}", want: "", missing: []string{"U"}},
		{in: "${U}${V:-${W}}", want: "", missing: []string{"U", "W"}},
		{in: "${", err: "${ must be followed by a name"},
		{in: "${}", err: "empty variable reference"},
		{in: "${A", err: "unterminated"},
		{in: "${A:-x", err: "unterminated"},
		{in: "${A-x}", err: "as in ${A} or ${A:-default}"},
		{in: "${1A}", err: "must be followed by a name"},
		{in: "${U:-${U:-${U:-${U:-${U:-${U:-${U:-${U:-${U:-${U:-x}}}}}}}}}}", err: "nested too deeply"},
	}
	for _, c := range cases {
		x, err := expand(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("expand(%q) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || x.value != c.want || !reflect.DeepEqual(x.missing, c.missing) {
			t.Errorf("expand(%q) = %q, missing %v, %v; want %q, missing %v", c.in, x.value, x.missing, err, c.want, c.missing)
		}
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-VALUE"
	vars := map[string]string{
		"SECRET":       secret,
		"SECRET_LIST":  secret + "\r\nX-Evil: 1",
		"PG":           "postgres://u:" + secret + "@db:5432/fn",
		"PG_BAD":       "postgres://u:" + secret + "@db:port/fn",
		"STORAGE_BAD":  "mysql://u:" + secret + "@db/fn",
		"WORKERS_BAD":  "many",
		"HOOK_KEY_BAD": secret,
	}
	// A valid manifest: the host prints without its secrets.
	good := `version: 1
host:
  listen: 0.0.0.0:8080
  api_key: ${SECRET}
  storage: ${PG}
functions:
  a:
    handler: {http: "http://127.0.0.1:9/x", headers: {Authorization: "Bearer ${SECRET}"}}
    triggers:
      - http: {path: /a, auth: {key: "${SECRET}"}}
      - s3: {bucket: b, access_key: "${SECRET}", secret_key: "${SECRET}", token: "${SECRET}"}
`
	m := mustParse(t, good, vars)
	for _, s := range []string{fmt.Sprint(m.Host), fmt.Sprintf("%v", m.Host), fmt.Sprintf("%+v", m.Host), fmt.Sprintf("%+v", *m.Functions["a"]),
		fmt.Sprintf("%+v", m.Functions["a"].Handler), fmt.Sprintf("%+v", *m.Functions["a"].Triggers[1].S3)} {
		if strings.Contains(s, secret) {
			t.Errorf("secret printed: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(m.Host), "postgres://u:xxxxx@db:5432/fn") {
		t.Errorf("host prints as %s", m.Host)
	}

	// An invalid manifest whose problems all concern secret fields.
	bad := `version: 1
host:
  listen: 0.0.0.0:8080
  api_key: ${UNSET_SECRET}
  storage: ${PG_BAD}
functions:
  a:
    handler: {http: "http://127.0.0.1:9/x", headers: {Authorization: "${SECRET_LIST}"}}
    triggers:
      - http: {path: /a, auth: {key: "${HOOK_KEY_BAD}", hmac: {secret: "${SECRET}"}}}
      - s3: {bucket: b, access_key: ["${SECRET}"], secret_key: {k: "${SECRET}"}}
  b:
    handler: {exec: [x], dir: "${SECRET}", headers: {A: "${SECRET}"}}
    timeout: ${SECRET}
    triggers:
      - http: {path: "${SECRET}"}
`
	errs := parseErrors(t, bad, vars)
	if len(errs.Problems) < 8 {
		t.Errorf("only %d problems:\n%v", len(errs.Problems), errs)
	}
	if strings.Contains(errs.Error(), secret) {
		// timeout and path are not secret fields, so their values may be quoted; the
		// secret must come only from them.
		for _, p := range errs.Problems {
			if strings.Contains(p.Message, secret) && !strings.HasPrefix(p.Message, "timeout:") && !strings.HasPrefix(p.Message, "path:") {
				t.Errorf("secret printed: %s", p)
			}
		}
	}
	errs = parseErrors(t, "version: 1\nhost: {storage: \"${STORAGE_BAD}\"}\nfunctions: {a: {handler: {builtin: echo}}}\n", vars)
	if strings.Contains(errs.Error(), secret) || !strings.Contains(errs.Error(), `unsupported scheme "mysql"`) {
		t.Errorf("storage error: %v", errs)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	t.Parallel()
	src := `version: 1
defaults:
  retry: &retry {max_attempts: 2, max_interval: 1m}
functions:
  a: &base
    handler: &echo {builtin: echo}
    timeout: 5s
    triggers:
      - &hook {http: {path: /a, methods: &methods [GET, put]}}
  b:
    <<: *base
    triggers: []
    retry: {<<: *retry, backoff: fixed}
  c:
    <<: [{timeout: 7s}, *base]
    handler: *echo
    triggers:
      - http: {path: /c, methods: *methods}
`
	m := mustParse(t, src, nil)
	a, b, c := m.Functions["a"], m.Functions["b"], m.Functions["c"]
	if a.Timeout != 5*time.Second || b.Timeout != 5*time.Second || c.Timeout != 7*time.Second {
		t.Errorf("timeouts = %v %v %v", a.Timeout, b.Timeout, c.Timeout)
	}
	if b.Handler.Builtin != "echo" || len(b.Triggers) != 0 || b.Retry.MaxAttempts != 2 || b.Retry.MaxInterval != time.Minute || b.Retry.Backoff != "fixed" {
		t.Errorf("b = %+v", b)
	}
	if !reflect.DeepEqual(a.Triggers[0].HTTP.Methods, []string{"GET", "PUT"}) || !reflect.DeepEqual(c.Triggers[0].HTTP.Methods, []string{"GET", "PUT"}) {
		t.Errorf("methods = %v %v", a.Triggers[0].HTTP.Methods, c.Triggers[0].HTTP.Methods)
	}
	if !reflect.DeepEqual(m.Order, []string{"a", "b", "c"}) {
		t.Errorf("order = %v", m.Order)
	}
}

func TestSingleStringThen(t *testing.T) {
	t.Parallel()
	m := mustParse(t, "version: 1\nfunctions:\n  a: {handler: {builtin: echo}, then: b, on_failure: b}\n  b: {handler: {builtin: echo}}\n", nil)
	if a := m.Functions["a"]; !reflect.DeepEqual(a.Then, []string{"b"}) || a.OnFailure != "b" {
		t.Errorf("a = %+v", a)
	}
}

func TestRoutesThatDoNotCollide(t *testing.T) {
	t.Parallel()
	src := `version: 1
functions:
  a:
    handler: {builtin: echo}
    triggers:
      - http: {path: "/items/{id}", methods: [GET]}
      - http: {path: "/items/{id}"}
      - http: {path: "/items/{id}/x"}
      - http: {path: "/files/{path...}", methods: [put, delete]}
  b:
    handler: {builtin: echo}
    triggers:
      - http: {path: "/items/{name}", methods: [PATCH]}
      - http: {path: /items, methods: [GET, POST]}
`
	m := mustParse(t, src, nil)
	if got := m.Functions["a"].Triggers[3].HTTP.Methods; !reflect.DeepEqual(got, []string{"PUT", "DELETE"}) {
		t.Errorf("methods = %v", got)
	}
}

func TestCronForms(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0 2 * * *", "*/10 * * * * *", "@every 30s", "@hourly", "@daily", "0 9 * * MON-FRI"} {
		m := mustParse(t, "version: 1\nfunctions:\n  a:\n    handler: {builtin: echo}\n    triggers:\n      - cron: {schedule: \""+s+"\"}\n", nil)
		c := m.Functions["a"].Triggers[0].Cron
		if c.Schedule != s || c.Missed != "one" || c.Overlap != "skip" {
			t.Errorf("cron %q = %+v", s, c)
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"0": 0, "30s": 30 * time.Second, "1m30s": 90 * time.Second, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "500ms": 500 * time.Millisecond, " 2h ": 2 * time.Hour,
	}
	for in, want := range good {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "-5s", "1x", "d", "7d-1h", "1.5d", "99999999999d", "1d+1h", "7 d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "functions.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nfunctions:\n  a:\n    handler: {exec: [bin/run]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != path || m.Dir != dir || m.Functions["a"].Handler.Exec[0] != filepath.Join(dir, "bin/run") || m.Host.Storage != "sqlite:"+filepath.Join(dir, ".fnhost/fnhost.db") {
		t.Errorf("manifest = %+v", m)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestFiveMistakes(t *testing.T) {
	t.Parallel()
	src := `version: 1
host:
  workers: many
functions:
  hello:
    handler: {builtin: echo}
    tiemout: 5s
    then: [nobody]
    triggers:
      - cron: {schedule: "0 2 * *"}
  bye:
    handler: {python: bye.py}
`
	errs := parseErrors(t, src, nil)
	want := []string{
		`functions.yaml:3:12: workers: want an integer, got string "many"`,
		`functions.yaml:7:5: unknown key "tiemout" in function "hello"; did you mean "timeout"?`,
		`functions.yaml:8:12: then: no function named "nobody"`,
		`functions.yaml:10:26: schedule: invalid cron schedule "0 2 * *": expected 5 to 6 fields, found 4`,
		`functions.yaml:12:15: unknown handler kind "python" in function "bye" (want builtin, exec or http)`,
	}
	lines := strings.Split(errs.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), errs)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

const fn = "functions:\n  a:\n    handler: {builtin: echo}\n"

// badCases are invalid manifests, each with the position and a part of the message of
// one of its problems.
var badCases = []struct {
	name, src, pos, msg string
	env                 map[string]string
}{
	// The file as a whole.
	{name: "empty", src: "", pos: "1:1", msg: "manifest is empty"},
	{name: "only comments", src: "# nothing\n", pos: "1:1", msg: "manifest is empty"},
	{name: "syntax", src: "version: 1\nfunctions:\n  a: [\n", pos: "3:1", msg: "YAML syntax error"},
	{name: "syntax tab", src: "version: 1\nfunctions:\n\ta: 1\n", pos: "3:1", msg: "YAML syntax error"},
	{name: "unknown anchor", src: "version: 1\nfunctions: *nope\n", pos: "1:1", msg: "unknown anchor"},
	{name: "two documents", src: "version: 1\n" + fn + "---\nversion: 1\n", pos: "5:1", msg: "only one YAML document"},
	{name: "not a mapping", src: "- version: 1\n", pos: "1:1", msg: "manifest: want a mapping, got a list"},
	{name: "scalar file", src: "hello\n", pos: "1:1", msg: `manifest: want a mapping, got string "hello"`},
	{name: "unknown top key", src: "version: 1\nfucntions: {}\n", pos: "2:1", msg: `unknown key "fucntions" in the top level; did you mean "functions"?`},
	{name: "non-string key", src: "version: 1\n? [a]\n: b\n" + fn, pos: "2:3", msg: "keys must be plain strings"},
	{name: "duplicate top key", src: "version: 1\nversion: 1\n" + fn, pos: "2:1", msg: `duplicate key "version" in the top level (first at line 1, column 1)`},

	// version and functions.
	{name: "no version", src: fn, pos: "1:1", msg: "version is required"},
	{name: "version 2", src: "version: 2\n" + fn, pos: "1:10", msg: "unsupported version 2 (want 1)"},
	{name: "version string", src: "version: \"1\"\n" + fn, pos: "1:10", msg: `version: want an integer, got string "1"`},
	{name: "version float", src: "version: 1.0\n" + fn, pos: "1:10", msg: "version: want an integer, got number 1.0"},
	{name: "no functions", src: "version: 1\n", pos: "1:1", msg: "functions is required"},
	{name: "null functions", src: "version: 1\nfunctions:\n", pos: "2:1", msg: "functions is required"},
	{name: "empty functions", src: "version: 1\nfunctions: {}\n", pos: "2:1", msg: "at least one function is required"},
	{name: "functions list", src: "version: 1\nfunctions: [a]\n", pos: "2:12", msg: "functions: want a mapping, got a list"},
	{name: "duplicate function", src: "version: 1\n" + fn + "  a:\n    handler: {builtin: echo}\n", pos: "5:3", msg: `duplicate key "a" in functions (first at line 3, column 3)`},
	{name: "function name upper", src: "version: 1\nfunctions:\n  Hello: {handler: {builtin: echo}}\n", pos: "3:3", msg: `invalid function name "Hello"`},
	{name: "function name long", src: "version: 1\nfunctions:\n  " + strings.Repeat("a", 64) + ": {handler: {builtin: echo}}\n", pos: "3:3", msg: "invalid function name"},
	{name: "function name space", src: "version: 1\nfunctions:\n  my fn: {handler: {builtin: echo}}\n", pos: "3:3", msg: `invalid function name "my fn"`},

	// host.
	{name: "host list", src: "version: 1\nhost: []\n" + fn, pos: "2:7", msg: "host: want a mapping, got a list"},
	{name: "workers string", src: "version: 1\nhost:\n  workers: many\n" + fn, pos: "3:12", msg: `workers: want an integer, got string "many"`},
	{name: "workers zero", src: "version: 1\nhost:\n  workers: 0\n" + fn, pos: "3:12", msg: "workers: must be at least 1, got 0"},
	{name: "workers float", src: "version: 1\nhost:\n  workers: 2.5\n" + fn, pos: "3:12", msg: "workers: want an integer, got number 2.5"},
	{name: "workers env", src: "version: 1\nhost:\n  workers: ${N}\n" + fn, env: map[string]string{"N": "lots"}, pos: "3:12", msg: `workers: want an integer, got string "lots"`},
	{name: "workers huge", src: "version: 1\nhost:\n  workers: 99999999999999999999\n" + fn, pos: "3:12", msg: "want an integer"},
	{name: "host unknown key", src: "version: 1\nhost:\n  listn: :80\n" + fn, pos: "3:3", msg: `unknown key "listn" in host; did you mean "listen"?`},
	{name: "listen no port", src: "version: 1\nhost:\n  listen: localhost\n" + fn, pos: "3:11", msg: "listen: invalid address \"localhost\": want host:port"},
	{name: "listen bad port", src: "version: 1\nhost:\n  listen: 127.0.0.1:http\n" + fn, pos: "3:11", msg: `invalid port "http"`},
	{name: "listen public without key", src: "version: 1\nhost:\n  listen: 0.0.0.0:8080\n" + fn, pos: "3:11", msg: "api_key is not set: host.api_key is required when listen (0.0.0.0:8080) is not a loopback address"},
	{name: "listen all without key", src: "version: 1\nhost: {listen: \":8080\"}\n" + fn, pos: "2:16", msg: "host.api_key is required"},
	{name: "listen public empty key", src: "version: 1\nhost:\n  listen: 10.0.0.1:80\n  api_key: ${K:-}\n" + fn, pos: "3:11", msg: "api_key is empty"},
	{name: "api_key list", src: "version: 1\nhost:\n  api_key: [a]\n" + fn, pos: "3:12", msg: "api_key: want a string, got a list"},
	{name: "storage scheme", src: "version: 1\nhost:\n  storage: mysql://db/fn\n" + fn, pos: "3:12", msg: `storage: unsupported scheme "mysql"`},
	{name: "storage empty sqlite", src: "version: 1\nhost:\n  storage: \"sqlite:\"\n" + fn, pos: "3:12", msg: "sqlite: needs a path"},
	{name: "storage bad postgres", src: "version: 1\nhost:\n  storage: postgres://db:port/x\n" + fn, pos: "3:12", msg: "invalid postgres URL"},
	{name: "log format", src: "version: 1\nhost:\n  log: {format: xml}\n" + fn, pos: "3:17", msg: `format: invalid value "xml" (want text or json)`},
	{name: "log level", src: "version: 1\nhost:\n  log: {level: warning}\n" + fn, pos: "3:16", msg: `level: invalid value "warning" (want debug, info, warn or error)`},
	{name: "log unknown", src: "version: 1\nhost:\n  log: {fromat: json}\n" + fn, pos: "3:9", msg: `unknown key "fromat" in host.log; did you mean "format"?`},
	{name: "retention bad", src: "version: 1\nhost:\n  retention: 1w\n" + fn, pos: "3:14", msg: `retention: invalid duration "1w"`},
	{name: "lease short", src: "version: 1\nhost:\n  lease: 500ms\n" + fn, pos: "3:10", msg: "lease: must be at least 1s, got 500ms"},
	{name: "max_body_bytes negative", src: "version: 1\nhost:\n  max_body_bytes: -1\n" + fn, pos: "3:19", msg: "max_body_bytes: must be at least 1, got -1"},
	{name: "dashboard unknown", src: "version: 1\nhost:\n  dashboard: {readonly: true}\n" + fn, pos: "3:15", msg: `unknown key "readonly" in host.dashboard; did you mean "read_only"?`},
	{name: "dashboard enabled type", src: "version: 1\nhost:\n  dashboard: {enabled: maybe}\n" + fn, pos: "3:24", msg: "enabled: want a boolean (true or false)"},
	{name: "shutdown negative", src: "version: 1\nhost:\n  shutdown_timeout: -1s\n" + fn, pos: "3:21", msg: "must not be negative"},

	// defaults and retry.
	{name: "defaults timeout unit", src: "version: 1\ndefaults:\n  timeout: 30\n" + fn, pos: "3:12", msg: `timeout: invalid duration "30": missing unit`},
	{name: "defaults timeout zero", src: "version: 1\ndefaults:\n  timeout: 0s\n" + fn, pos: "3:12", msg: "timeout: must be greater than 0"},
	{name: "defaults unknown", src: "version: 1\ndefaults:\n  retyr: {}\n" + fn, pos: "3:3", msg: `unknown key "retyr" in defaults; did you mean "retry"?`},
	{name: "retry attempts", src: "version: 1\ndefaults:\n  retry: {max_attempts: 0}\n" + fn, pos: "3:25", msg: "max_attempts: must be at least 1, got 0"},
	{name: "retry backoff", src: "version: 1\ndefaults:\n  retry: {backoff: linear}\n" + fn, pos: "3:20", msg: `backoff: invalid value "linear" (want exponential or fixed)`},
	{name: "retry jitter", src: "version: 1\ndefaults:\n  retry: {jitter: 1.5}\n" + fn, pos: "3:19", msg: "jitter: must be from 0 to 1, got 1.5"},
	{name: "retry jitter nan", src: "version: 1\ndefaults:\n  retry: {jitter: .nan}\n" + fn, pos: "3:19", msg: "jitter: want a number"},
	{name: "retry intervals", src: "version: 1\ndefaults:\n  retry: {initial_interval: 1m, max_interval: 10s}\n" + fn, pos: "3:3", msg: "retry: max_interval 10s is less than initial_interval 1m0s"},
	{name: "function retry intervals", src: "version: 1\ndefaults:\n  retry: {initial_interval: 10s}\nfunctions:\n  a:\n    handler: {builtin: echo}\n    retry: {max_interval: 5s}\n",
		pos: "7:5", msg: "retry: max_interval 5s is less than initial_interval 10s"},
	{name: "retry unknown", src: "version: 1\n" + fn + "    retry: {max_attempt: 3}\n", pos: "5:13", msg: `unknown key "max_attempt" in the retry of function "a"; did you mean "max_attempts"?`},

	// functions.
	{name: "unknown function key", src: "version: 1\n" + fn + "    tiemout: 5s\n", pos: "5:5", msg: `unknown key "tiemout" in function "a"; did you mean "timeout"?`},
	{name: "unknown function key far", src: "version: 1\n" + fn + "    color: red\n", pos: "5:5", msg: `unknown key "color" in function "a" (want one of handler, timeout`},
	{name: "duplicate function key", src: "version: 1\n" + fn + "    timeout: 5s\n    timeout: 6s\n", pos: "6:5", msg: `duplicate key "timeout" in function "a" (first at line 5, column 5)`},
	{name: "function scalar", src: "version: 1\nfunctions:\n  a: echo\n", pos: "3:6", msg: `a: want a mapping, got string "echo"`},
	{name: "function null", src: "version: 1\nfunctions:\n  a:\n", pos: "3:3", msg: `function "a": handler is required`},
	{name: "function timeout", src: "version: 1\n" + fn + "    timeout: 5x\n", pos: "5:14", msg: `timeout: invalid duration "5x"`},
	{name: "function timeout negative", src: "version: 1\n" + fn + "    timeout: -5s\n", pos: "5:14", msg: "must not be negative"},
	{name: "concurrency negative", src: "version: 1\n" + fn + "    concurrency: -1\n", pos: "5:18", msg: "concurrency: must not be negative, got -1"},
	{name: "description mapping", src: "version: 1\n" + fn + "    description: {a: b}\n", pos: "5:18", msg: "description: want a string, got a mapping"},

	// handlers.
	{name: "handler missing", src: "version: 1\nfunctions:\n  a:\n    timeout: 5s\n", pos: "3:3", msg: `function "a": handler is required`},
	{name: "handler string", src: "version: 1\nfunctions:\n  a:\n    handler: echo\n", pos: "4:14", msg: `handler: want a mapping, got string "echo"`},
	{name: "handler empty", src: "version: 1\nfunctions:\n  a:\n    handler: {}\n", pos: "4:5", msg: "want exactly one of builtin, exec or http"},
	{name: "handler unknown kind", src: "version: 1\nfunctions:\n  a:\n    handler: {python: x.py}\n", pos: "4:15", msg: `unknown handler kind "python" in function "a" (want builtin, exec or http)`},
	{name: "handler kind typo", src: "version: 1\nfunctions:\n  a:\n    handler: {buitlin: echo}\n", pos: "4:15", msg: `did you mean "builtin"?`},
	{name: "handler two kinds", src: "version: 1\nfunctions:\n  a:\n    handler: {builtin: echo, http: \"http://x\"}\n", pos: "4:30", msg: "has both builtin and http"},
	{name: "handler unknown key", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [x], dri: /tmp}\n", pos: "4:26", msg: `unknown key "dri" in the handler of function "a"; did you mean "dir"?`},
	{name: "builtin empty", src: "version: 1\nfunctions:\n  a:\n    handler: {builtin: \"\"}\n", pos: "4:24", msg: "builtin: want the name"},
	{name: "exec string", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: ./run.sh --fast}\n", pos: "4:21", msg: "exec: want a list of arguments such as [python3, handler.py], not a string: no shell is used"},
	{name: "exec empty", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: []}\n", pos: "4:21", msg: "exec: want a non-empty list"},
	{name: "exec mapping item", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a, {b: c}]}\n", pos: "4:25", msg: "exec: want a string, got a mapping"},
	{name: "exec empty program", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [\"\"]}\n", pos: "4:22", msg: "program (first argument) must not be empty"},
	{name: "http scheme", src: "version: 1\nfunctions:\n  a:\n    handler: {http: \"ftp://x/y\"}\n", pos: "4:21", msg: `http: unsupported URL scheme "ftp"`},
	{name: "http relative", src: "version: 1\nfunctions:\n  a:\n    handler: {http: /notify}\n", pos: "4:21", msg: "http: want an absolute http or https URL"},
	{name: "headers on exec", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a], headers: {X: y}}\n", pos: "4:26", msg: `headers applies only to http handlers, and function "a" has an exec handler`},
	{name: "dir on builtin", src: "version: 1\nfunctions:\n  a:\n    handler: {builtin: echo, dir: /tmp}\n", pos: "4:30", msg: "dir applies only to exec handlers"},
	{name: "env on http", src: "version: 1\nfunctions:\n  a:\n    handler: {http: \"http://x\", env: {A: b}}\n", pos: "4:33", msg: "env applies only to exec handlers"},
	{name: "exit code range", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a], permanent_exit_codes: [1, 300]}\n", pos: "4:52", msg: "exit code 300 is not from 1 to 255"},
	{name: "exit code type", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a], permanent_exit_codes: [x]}\n", pos: "4:49", msg: `permanent_exit_codes: want an integer, got string "x"`},
	{name: "grace negative", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a], grace_period: -1s}\n", pos: "4:40", msg: "must not be negative"},
	{name: "env bad name", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a], env: {1A: b}}\n", pos: "4:32", msg: `env: invalid variable name "1A"`},
	{name: "env list", src: "version: 1\nfunctions:\n  a:\n    handler: {exec: [a], env: [A=b]}\n", pos: "4:31", msg: "env: want a mapping, got a list"},
	{name: "header bad name", src: "version: 1\nfunctions:\n  a:\n    handler: {http: \"http://x\", headers: {\"X Y\": z}}\n", pos: "4:43", msg: `headers: invalid header name "X Y"`},

	// continuations.
	{name: "then missing", src: "version: 1\n" + fn + "    then: [notfy]\n  notify: {handler: {builtin: echo}}\n", pos: "5:12", msg: `then: no function named "notfy"; did you mean "notify"?`},
	{name: "then string missing", src: "version: 1\n" + fn + "    then: nobody\n", pos: "5:11", msg: `then: no function named "nobody"`},
	{name: "then self", src: "version: 1\n" + fn + "    then: [a]\n", pos: "5:12", msg: `then: function "a" cannot continue with itself`},
	{name: "then twice", src: "version: 1\n" + fn + "    then: [b, b]\n  b: {handler: {builtin: echo}}\n", pos: "5:15", msg: `then: "b" is listed twice`},
	{name: "then mapping", src: "version: 1\n" + fn + "    then: {b: 1}\n", pos: "5:11", msg: "then: want a list, got a mapping"},
	{name: "on_failure missing", src: "version: 1\n" + fn + "    on_failure: alrt\n  alert: {handler: {builtin: echo}}\n", pos: "5:17", msg: `on_failure: no function named "alrt"; did you mean "alert"?`},
	{name: "on_failure self", src: "version: 1\n" + fn + "    on_failure: a\n", pos: "5:17", msg: `on_failure: function "a" cannot continue with itself`},

	// triggers.
	{name: "triggers mapping", src: "version: 1\n" + fn + "    triggers: {http: {path: /a}}\n", pos: "5:15", msg: "triggers: want a list, got a mapping"},
	{name: "trigger scalar", src: "version: 1\n" + fn + "    triggers: [http]\n", pos: "5:16", msg: `trigger: want a mapping, got string "http"`},
	{name: "trigger empty", src: "version: 1\n" + fn + "    triggers: [{}]\n", pos: "5:16", msg: "trigger of function \"a\" is empty: want one of http, cron, fs, s3 or queue"},
	{name: "trigger unknown kind", src: "version: 1\n" + fn + "    triggers:\n      - webhook: {path: /a}\n", pos: "6:9", msg: `unknown trigger kind "webhook" in function "a" (want one of http, cron, fs, s3 or queue)`},
	{name: "trigger kind typo", src: "version: 1\n" + fn + "    triggers:\n      - crn: {schedule: \"@daily\"}\n", pos: "6:9", msg: `did you mean "cron"?`},
	{name: "trigger two kinds", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a}\n        cron: {schedule: \"@daily\"}\n", pos: "7:9", msg: "has both http and cron: put each trigger in its own list item"},
	{name: "trigger misindented", src: "version: 1\n" + fn + "    triggers:\n      - http:\n        path: /a\n", pos: "7:9", msg: `has key "path" next to http`},
	{name: "trigger kind scalar", src: "version: 1\n" + fn + "    triggers:\n      - queue: orders\n", pos: "6:16", msg: `queue: want a mapping, got string "orders"`},

	// http triggers.
	{name: "http no path", src: "version: 1\n" + fn + "    triggers:\n      - http: {mode: sync}\n", pos: "6:9", msg: `path is required in the http trigger of function "a"`},
	{name: "http relative path", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: hooks/a}\n", pos: "6:22", msg: `path: "hooks/a" must start with /`},
	{name: "http reserved api", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /api/v1/x}\n", pos: "6:22", msg: "is reserved for the host's own endpoints"},
	{name: "http reserved dashboard", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /dashboard/x}\n", pos: "6:22", msg: "reserved"},
	{name: "http reserved metrics", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /metrics}\n", pos: "6:22", msg: "reserved"},
	{name: "http reserved healthz", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /healthz}\n", pos: "6:22", msg: "reserved"},
	{name: "http reserved readyz", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /readyz}\n", pos: "6:22", msg: "reserved"},
	{name: "http wildcard", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: \"/a/x{id}\"}\n", pos: "6:22", msg: "a wildcard must be a whole segment"},
	{name: "http rest wildcard", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: \"/a/{p...}/b\"}\n", pos: "6:22", msg: "may only be the last segment"},
	{name: "http query", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: \"/a?x=1\"}\n", pos: "6:22", msg: "must not contain spaces, ? or #"},
	{name: "http method", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, methods: [FETCH]}\n", pos: "6:36", msg: `methods: unknown HTTP method "FETCH"`},
	{name: "http methods empty", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, methods: []}\n", pos: "6:35", msg: "methods: must not be empty"},
	{name: "http methods string", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, methods: GET}\n", pos: "6:35", msg: `methods: want a list, got string "GET"`},
	{name: "http mode", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, mode: snyc}\n", pos: "6:32", msg: `mode: invalid value "snyc" (want sync or async); did you mean "sync"?`},
	{name: "http max body", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, max_body_bytes: 0}\n", pos: "6:42", msg: "max_body_bytes: must be at least 1, got 0"},
	{name: "http auth both", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {key: k, hmac: {secret: s}}}\n", pos: "6:41", msg: "auth: set key or hmac, not both"},
	{name: "http auth unknown", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {token: k}}\n", pos: "6:33", msg: `unknown key "token" in the auth of the http trigger of function "a"`},
	{name: "http hmac no secret", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {hmac: {header: X-Sig}}}\n", pos: "6:33", msg: "secret is required in hmac"},
	{name: "http hmac header", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {hmac: {secret: s, header: \"X Sig\"}}}\n", pos: "6:59", msg: `header: invalid header name "X Sig"`},
	{name: "http auth empty key", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {key: \"${K:-}\"}}\n", pos: "6:38", msg: "auth: key is empty"},
	{name: "http auth key unset", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {key: ${HOOK_KEY}}}\n", pos: "6:38", msg: "environment variable HOOK_KEY is not set"},
	{name: "duplicate route", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /hooks/a}\n  b:\n    handler: {builtin: echo}\n    triggers:\n      - http: {path: /hooks/a, methods: [GET, POST]}\n",
		pos: "10:22", msg: `path: duplicate route POST /hooks/a: function "a" already has POST /hooks/a at line 6, column 22`},
	{name: "duplicate route wildcard", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: \"/a/{id}\", methods: [GET]}\n      - http: {path: \"/a/{name}\", methods: [get]}\n",
		pos: "7:22", msg: "duplicate route GET /a/{name}"},

	// cron triggers.
	{name: "cron no schedule", src: "version: 1\n" + fn + "    triggers:\n      - cron: {timezone: UTC}\n", pos: "6:9", msg: "schedule is required"},
	{name: "cron fields", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"* *\"}\n", pos: "6:26", msg: `schedule: invalid cron schedule "* *": expected 5 to 6 fields, found 2`},
	{name: "cron range", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"61 * * * *\"}\n", pos: "6:26", msg: "above maximum (59)"},
	{name: "cron every", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"@every 1d\"}\n", pos: "6:26", msg: "failed to parse duration"},
	{name: "cron tz prefix", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"TZ=UTC\"}\n", pos: "6:26", msg: "set the time zone with timezone:"},
	{name: "cron timezone", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"@daily\", timezone: Mars/Olympus}\n", pos: "6:46", msg: `timezone: unknown time zone "Mars/Olympus"`},
	{name: "cron missed", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"@daily\", missed: sometimes}\n", pos: "6:44", msg: `missed: invalid value "sometimes" (want one, all or skip)`},
	{name: "cron overlap", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"@daily\", overlap: skp}\n", pos: "6:45", msg: `did you mean "skip"?`},
	{name: "cron unknown", src: "version: 1\n" + fn + "    triggers:\n      - cron: {schedule: \"@daily\", tz: UTC}\n", pos: "6:36", msg: `unknown key "tz" in the cron trigger of function "a"`},

	// fs triggers.
	{name: "fs no path", src: "version: 1\n" + fn + "    triggers:\n      - fs: {pattern: \"*.csv\"}\n", pos: "6:9", msg: "path is required in the fs trigger"},
	{name: "fs pattern", src: "version: 1\n" + fn + "    triggers:\n      - fs: {path: in, pattern: \"[a\"}\n", pos: "6:33", msg: `pattern: invalid glob "[a"`},
	{name: "fs events", src: "version: 1\n" + fn + "    triggers:\n      - fs: {path: in, events: [created, moved]}\n", pos: "6:42", msg: `events: unknown event "moved" (want created, modified or deleted)`},
	{name: "fs recursive", src: "version: 1\n" + fn + "    triggers:\n      - fs: {path: in, recursive: yes}\n", pos: "6:35", msg: `recursive: want a boolean (true or false), got string "yes"`},
	{name: "fs settle", src: "version: 1\n" + fn + "    triggers:\n      - fs: {path: in, settle: soon}\n", pos: "6:32", msg: `settle: invalid duration "soon"`},
	{name: "fs rescan zero", src: "version: 1\n" + fn + "    triggers:\n      - fs: {path: in, rescan: 0s}\n", pos: "6:32", msg: "rescan: must be greater than 0"},

	// s3 triggers.
	{name: "s3 no bucket", src: "version: 1\n" + fn + "    triggers:\n      - s3: {prefix: a/}\n", pos: "6:9", msg: "bucket is required in the s3 trigger"},
	{name: "s3 mode", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, mode: push}\n", pos: "6:31", msg: `mode: invalid value "push" (want webhook, listen, poll or sqs)`},
	{name: "s3 sqs without queue", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, mode: sqs}\n", pos: "6:9", msg: "queue_url is required in the s3 trigger of function \"a\" with mode: sqs"},
	{name: "s3 interval without poll", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, interval: 5s}\n", pos: "6:25", msg: "interval applies only to mode: poll"},
	{name: "s3 listen without endpoint", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, mode: listen}\n", pos: "6:9", msg: "endpoint is required"},
	{name: "s3 endpoint", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, endpoint: \"127.0.0.1:9000\"}\n", pos: "6:35", msg: "endpoint: "},
	{name: "s3 events", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, events: [deleted]}\n", pos: "6:34", msg: `events: unknown event "deleted" (want created, removed or an S3 event name`},
	{name: "s3 keys pair", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, access_key: a}\n", pos: "6:9", msg: "access_key and secret_key go together, and secret_key is missing"},
	{name: "s3 bool", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, path_style: 1}\n", pos: "6:37", msg: "path_style: want a boolean (true or false), got integer 1"},
	{name: "s3 reconcile poll", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, mode: poll, reconcile: 1m}\n", pos: "6:37", msg: "reconcile applies to the push modes"},
	{name: "s3 target mode", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, mode: poll, target: x, endpoint: \"http://h:9000\"}\n", pos: "6:37", msg: "target applies only to mode: webhook"},
	{name: "s3 target endpoint", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, target: x}\n", pos: "6:9", msg: "endpoint is required in the s3 trigger of function \"a\" with target"},
	{name: "s3 target id", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, target: \"a b\", endpoint: \"http://h:9000\"}\n", pos: "6:33", msg: "target: invalid MinIO target ID"},
	{name: "s3 reconcile short", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, reconcile: 10ms}\n", pos: "6:36", msg: "reconcile"},
	{name: "http s3 receiver path", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /hooks/s3}\n", pos: "6:22", msg: "reserved for the s3 trigger's receiver"},
	{name: "s3 unknown", src: "version: 1\n" + fn + "    triggers:\n      - s3: {bucket: b, sufix: .jpg}\n", pos: "6:25", msg: `did you mean "suffix"?`},

	// queue triggers.
	{name: "queue no name", src: "version: 1\n" + fn + "    triggers:\n      - queue: {}\n", pos: "6:9", msg: "name is required in the queue trigger"},
	{name: "queue bad name", src: "version: 1\n" + fn + "    triggers:\n      - queue: {name: -orders}\n", pos: "6:23", msg: `name: invalid queue name "-orders"`},

	// environment.
	{name: "env missing", src: "version: 1\nhost:\n  api_key: ${FNHOST_API_KEY}\n" + fn, pos: "3:12", msg: "environment variable FNHOST_API_KEY is not set"},
	{name: "env unterminated", src: "version: 1\nhost:\n  api_key: \"${FNHOST_API_KEY\"\n" + fn, pos: "3:12", msg: "unterminated variable reference ${FNHOST_API_KEY"},
	{name: "env bad syntax", src: "version: 1\n" + fn + "    description: ${A-b}\n", pos: "5:18", msg: "invalid variable reference: after ${A want } or :-default"},
	{name: "env in flow", src: "version: 1\n" + fn + "    triggers:\n      - http: {path: /a, auth: {hmac: {secret: ${GITHUB_WEBHOOK_SECRET}, header: X-Sig}}}\n",
		pos: "6:48", msg: "environment variable GITHUB_WEBHOOK_SECRET is not set"},

	// anchors, aliases and merge keys.
	{name: "merge scalar", src: "version: 1\nfunctions:\n  a:\n    <<: 5\n    handler: {builtin: echo}\n", pos: "4:9", msg: "merge key <<: want a mapping or a list of mappings"},
	{name: "merge unknown key", src: "version: 1\nfunctions:\n  a:\n    <<: {color: red}\n    handler: {builtin: echo}\n", pos: "4:10", msg: `unknown key "color" in function "a"`},
	{name: "alias wrong type", src: "version: 1\nfunctions:\n  a:\n    handler: &h {builtin: echo}\n    timeout: *h\n", pos: "4:14", msg: "timeout: want a duration such as 30s, 1m30s or 7d, got a mapping"},
	{name: "alias self", src: "version: 1\nfunctions: &f\n  a:\n    handler: {builtin: echo}\n    triggers: *f\n", pos: "2:12", msg: "triggers: want a list, got a mapping"},
	{name: "merge self", src: "version: 1\nfunctions:\n  a: &a\n    handler: {builtin: echo}\n    <<: *a\n", pos: "5:9", msg: "merged mapping contains this mapping itself"},
}

func TestBadManifests(t *testing.T) {
	t.Parallel()
	for _, c := range badCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			errs := parseErrors(t, c.src, c.env)
			want := "functions.yaml:" + c.pos + ": "
			for _, p := range errs.Problems {
				if s := p.String(); strings.HasPrefix(s, want) && strings.Contains(p.Message, c.msg) {
					return
				}
			}
			t.Errorf("want a problem %s...%s; got:\n%v", want, c.msg, errs)
		})
	}
}

func TestAliasCycleDoesNotHang(t *testing.T) {
	t.Parallel()
	// Many mappings merged at once, each holding an alias of the same list.
	var b strings.Builder
	b.WriteString("version: 1\nfunctions:\n  a:\n    handler: {builtin: echo}\n    triggers: &l0 [{queue: {name: q}}]\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "  f%d:\n    handler: {builtin: echo}\n    <<: &m%d {triggers: *l0}\n", i, i)
	}
	b.WriteString("  z:\n    handler: {builtin: echo}\n    <<: [")
	for i := 1; i <= 30; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "*m%d", i)
	}
	b.WriteString("]\n")
	if _, err := Parse([]byte(b.String()), "functions.yaml", nil); err != nil {
		t.Fatalf("Parse: %v", err)
	}

	// Each level merges the one before twice: 2^40 keys if nothing stopped it.
	b.Reset()
	b.WriteString("version: 1\nfunctions:\n  a:\n    handler: {builtin: echo}\n    <<: &m0 {timeout: 1s}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  f%d:\n    handler: {builtin: echo}\n    <<: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	start := time.Now()
	_, err := Parse([]byte(b.String()), "functions.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "manifest too complex") {
		t.Fatalf("Parse: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Parse took %v", d)
	}

	// A merge that refers to itself through a list.
	src := "version: 1\nfunctions:\n  a: &a\n    handler: {builtin: echo}\n    <<: [*a]\n"
	if _, err := Parse([]byte(src), "functions.yaml", nil); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Fatalf("Parse: %v", err)
	}
}

func TestErrorsFormat(t *testing.T) {
	t.Parallel()
	e := newErrors([]Problem{
		{Pos: Position{File: "f.yaml", Line: 9, Column: 2}, Message: "b"},
		{Pos: Position{File: "f.yaml", Line: 3, Column: 7}, Message: "a"},
		{Pos: Position{File: "f.yaml", Line: 9, Column: 2}, Message: "b"},
	})
	if got, want := e.Error(), "f.yaml:3:7: a\nf.yaml:9:2: b"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (Position{Line: 1, Column: 2}).String(); got != "1:2" {
		t.Errorf("unnamed position = %q", got)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	cases := map[string]string{"tiemout": "timeout", "Timeout": "timeout", "handlr": "handler", "tigers": "triggers", "x": "", "colour": "", "retyr": "retry"}
	for in, want := range cases {
		if got := suggest(in, functionKeys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCRLFAndBOM(t *testing.T) {
	t.Parallel()
	src := "\ufeff" + strings.ReplaceAll(designExample, "\n", "\r\n")
	m := mustParse(t, src, designEnv)
	if len(m.Order) != 7 || m.Functions["hello"].Triggers[1].HTTP.Auth.HMAC.Secret.Reveal() != designEnv["GITHUB_WEBHOOK_SECRET"] {
		t.Errorf("manifest = %+v", m)
	}
	errs := parseErrors(t, "\ufeffversion: 1\r\nfunctions:\r\n  a:\r\n    handler: {builtin: echo}\r\n    tiemout: 1s\r\n", nil)
	if got := errs.Problems[0].Pos; got.Line != 5 || got.Column != 5 {
		t.Errorf("position = %v, want 5:5", got)
	}
}
