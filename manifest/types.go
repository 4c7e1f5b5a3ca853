package manifest

import (
	"time"
)

// Position is a place in the manifest file.
type Position struct {
	File   string
	Line   int
	Column int
}

// Manifest is a decoded, validated functions.yaml.
type Manifest struct {
	Version int
	// Path is the manifest file; Dir is its directory, the base of relative paths.
	Path string
	Dir  string
	Host Host
	// Defaults are the manifest's defaults section over fnhost's own defaults; they
	// are already merged into every function.
	Defaults Defaults
	// Functions by name; Order keeps the order of the file.
	Functions map[string]*Function
	Order     []string
}

// Host configures the host process.
type Host struct {
	// Listen is the one HTTP listener (default 127.0.0.1:8080).
	Listen string
	// Storage is sqlite:PATH (default sqlite:.fnhost/fnhost.db, relative to the
	// manifest) or a postgres:// URL.
	Storage string
	// Workers caps concurrent invocations across the host (default 32).
	Workers int
	// APIKey protects /api/v1 and the dashboard; required unless Listen is loopback.
	APIKey Secret
	// Log is the format (text|json) and level (debug|info|warn|error) of the host's log.
	LogFormat string
	LogLevel  string
	// Retention is how long finished invocations are kept (default 168h).
	Retention time.Duration
	// Lease is how long a claim holds without a heartbeat (default 30s).
	Lease time.Duration
	// ShutdownTimeout bounds the drain on SIGTERM (default 30s).
	ShutdownTimeout time.Duration
	// MaxLogBytes caps the captured output of one attempt (default 64 KiB).
	MaxLogBytes int
	// MaxBodyBytes caps request bodies on the listener (default 1 MiB).
	MaxBodyBytes int64
	// Dashboard configures the web UI at /dashboard/.
	Dashboard Dashboard
}

// Dashboard configures the web UI.
type Dashboard struct {
	// Enabled serves the dashboard (default true).
	Enabled bool
	// ReadOnly shows everything but offers no action: no retry, cancel or run (default
	// false).
	ReadOnly bool
}

// Defaults apply to every function unless it sets its own.
type Defaults struct {
	Timeout time.Duration
	Retry   Retry
}

// Retry is a retry policy.
type Retry struct {
	// MaxAttempts counts the first run too (default 5).
	MaxAttempts int
	// Backoff is exponential (default) or fixed.
	Backoff         string
	InitialInterval time.Duration
	MaxInterval     time.Duration
	// Jitter is the fraction of randomness added to each delay, 0..1 (default 0.1).
	Jitter float64
}

// Function binds a handler to its triggers.
type Function struct {
	Name string
	// Description is free text for people: the CLI and the dashboard show it.
	Description string
	Handler     Handler
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	Retry   Retry
	// Concurrency caps concurrent invocations of this function; 0 means only the host cap.
	Concurrency int
	Triggers    []Trigger
	// Then are continuations run after success; OnFailure runs once attempts are exhausted.
	Then      []string
	OnFailure string
	Pos       Position
}

// Handler is exactly one of Builtin, Exec or HTTP.
type Handler struct {
	// Builtin names a Go function in the builtin registry.
	Builtin string
	// Exec is the argv of a process, run without a shell. A relative program path that
	// contains a slash is relative to the manifest's directory; Parse makes it absolute.
	Exec []string
	// Dir is the working directory of an exec handler, absolute (default: the
	// manifest's directory; a relative dir is relative to it).
	Dir string
	// Env is added to an exec handler's environment.
	Env map[string]string
	// PermanentExitCodes fail an exec handler's invocation without retry.
	PermanentExitCodes []int
	// GracePeriod is how long an exec handler has between SIGTERM and SIGKILL (default 5s).
	GracePeriod time.Duration
	// HTTP is the URL an http handler POSTs the event to.
	HTTP string
	// Headers are added to an http handler's requests.
	Headers map[string]Secret
}

// Kind names the handler kind: builtin, exec or http.
func (h Handler) Kind() string {
	switch {
	case h.Builtin != "":
		return "builtin"
	case len(h.Exec) > 0:
		return "exec"
	case h.HTTP != "":
		return "http"
	}
	return ""
}

// Trigger is one trigger of a function; exactly one of the kind fields is set.
type Trigger struct {
	Kind  string
	HTTP  *HTTPTrigger
	Cron  *CronTrigger
	FS    *FSTrigger
	S3    *S3Trigger
	Queue *QueueTrigger
	Pos   Position
}

// HTTPTrigger is a route on the host's listener.
type HTTPTrigger struct {
	Path    string
	Methods []string
	// Mode is sync (answer with the handler's result) or async (202, default).
	Mode string
	Auth HTTPAuth
	// MaxBodyBytes overrides the host's body limit for this route.
	MaxBodyBytes int64
}

// HTTPAuth is the authentication of an HTTP trigger: none, a key, or an HMAC signature.
type HTTPAuth struct {
	Key  Secret
	HMAC *HMACAuth
}

// HMACAuth checks an HMAC-SHA256 signature of the raw body.
type HMACAuth struct {
	Secret Secret
	// Header carries "sha256=<hex>" (default X-Hub-Signature-256).
	Header string
}

// CronTrigger fires on a schedule.
type CronTrigger struct {
	Schedule string
	Timezone string
	// Missed is one (default), all or skip.
	Missed string
	// Overlap is skip (default), allow or queue.
	Overlap string
}

// FSTrigger watches a directory.
type FSTrigger struct {
	Path      string
	Pattern   string
	Recursive bool
	Events    []string
	Settle    time.Duration
	Existing  bool
	// Rescan is the interval of the periodic rescan (default 30s).
	Rescan time.Duration
}

// S3Trigger receives bucket events.
type S3Trigger struct {
	Endpoint  string
	Region    string
	Bucket    string
	Prefix    string
	Suffix    string
	Events    []string
	AccessKey Secret
	SecretKey Secret
	// Mode is webhook, listen, poll or sqs.
	Mode      string
	Interval  time.Duration
	QueueURL  string
	PathStyle bool
	Insecure  bool
	Download  bool
	Token     Secret
	// Profile names a profile of the shared AWS config and credentials files.
	Profile string
	// CAFile is a PEM bundle of the certificate authorities to trust for endpoint.
	CAFile string
	// Reconcile is how often the push modes (webhook, listen, sqs) list the bucket to
	// catch what their notifications missed; they also list at start.
	Reconcile time.Duration
	// Target is the ID of the MinIO webhook target (arn:minio:sqs::<target>:webhook)
	// that the trigger adds to the bucket's notification configuration at start; empty
	// leaves the configuration alone.
	Target string
}

// QueueTrigger consumes a named durable queue.
type QueueTrigger struct {
	Name string
}

// Secret is a string that never prints: logs, the API and the dashboard see "***".
type Secret string

// String hides the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// Reveal returns the secret's value, for the code that must use it.
func (s Secret) Reveal() string { return string(s) }

// MarshalText hides the secret in JSON and YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
