package manifest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The defaults of settings that the manifest may leave out.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultStorage         = "sqlite:.fnhost/fnhost.db"
	DefaultWorkers         = 32
	DefaultLogFormat       = "text"
	DefaultLogLevel        = "info"
	DefaultRetention       = 168 * time.Hour
	DefaultLease           = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultMaxLogBytes     = 64 << 10
	DefaultMaxBodyBytes    = 1 << 20
	DefaultTimeout         = 30 * time.Second
	DefaultGracePeriod     = 5 * time.Second
	DefaultHMACHeader      = "X-Hub-Signature-256"
	DefaultS3Region        = "us-east-1"
	DefaultS3Interval      = time.Second
	DefaultS3Reconcile     = 5 * time.Minute
	DefaultS3Target        = "fnhost"
	DefaultSettle          = 500 * time.Millisecond
	DefaultRescan          = 30 * time.Second
)

// DefaultRetry returns the retry policy of a function when neither defaults.retry nor
// the function's own retry says otherwise.
func DefaultRetry() Retry {
	return Retry{
		MaxAttempts:     5,
		Backoff:         "exponential",
		InitialInterval: time.Second,
		MaxInterval:     5 * time.Minute,
		Jitter:          0.1,
	}
}

var (
	topKeys      = []string{"version", "host", "defaults", "functions"}
	hostKeys     = []string{"listen", "storage", "workers", "api_key", "log", "retention", "lease", "shutdown_timeout", "max_log_bytes", "max_body_bytes", "dashboard"}
	logKeys      = []string{"format", "level"}
	dashKeys     = []string{"enabled", "read_only"}
	defaultsKeys = []string{"timeout", "retry"}
	retryKeys    = []string{"max_attempts", "backoff", "initial_interval", "max_interval", "jitter"}
	functionKeys = []string{"handler", "timeout", "retry", "concurrency", "triggers", "then", "on_failure", "description"}
	handlerKinds = []string{"builtin", "exec", "http"}
	handlerKeys  = []string{"builtin", "exec", "http", "dir", "env", "permanent_exit_codes", "grace_period", "headers"}
	triggerKinds = []string{"http", "cron", "fs", "s3", "queue"}
	httpKeys     = []string{"path", "methods", "mode", "auth", "max_body_bytes"}
	authKeys     = []string{"key", "hmac"}
	hmacKeys     = []string{"secret", "header"}
	cronKeys     = []string{"schedule", "timezone", "missed", "overlap"}
	fsKeys       = []string{"path", "pattern", "recursive", "events", "settle", "existing", "rescan"}
	s3Keys       = []string{"endpoint", "region", "bucket", "prefix", "suffix", "events", "access_key", "secret_key", "mode", "interval", "queue_url", "path_style", "insecure", "download", "token", "profile", "ca_file", "reconcile", "target"}
	queueKeys    = []string{"name"}

	functionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	queueName    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	s3Target     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	s3EventName  = regexp.MustCompile(`^s3:[A-Za-z]+(:[A-Za-z*]+)*$`)
	urlScheme    = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)
)

// Load reads the manifest at path and decodes it, expanding ${VAR} from the process
// environment. When the manifest is not valid the error is an *Errors listing every
// problem.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse decodes a manifest. filename names it in problems and is the base of relative
// paths (its directory); lookupEnv expands ${VAR} (nil means an empty environment).
// Decoding is strict and does not stop at the first problem: when the manifest is not
// valid, the error is an *Errors holding every problem found, each with its position.
func Parse(data []byte, filename string, lookupEnv func(string) (string, bool)) (*Manifest, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	path, dir := "", "."
	if filename != "" {
		if abs, err := filepath.Abs(filename); err == nil {
			path = abs
		} else {
			path = filepath.Clean(filename)
		}
		dir = filepath.Dir(path)
	} else if wd, err := os.Getwd(); err == nil {
		dir = wd
	}
	d := &decoder{file: filename, dir: dir, lookup: lookupEnv, scalars: map[*yaml.Node]scalar{}}
	var m *Manifest
	if root := d.parse(data); root != nil {
		m = d.manifest(root)
		if m != nil {
			m.Path, m.Dir = path, dir
		}
	}
	if len(d.problems) > 0 {
		return nil, newErrors(d.problems)
	}
	if m == nil {
		return nil, &Errors{Problems: []Problem{{Pos: Position{File: filename, Line: 1, Column: 1}, Message: "manifest could not be decoded"}}}
	}
	return m, nil
}

// Function returns the function called name.
func (m *Manifest) Function(name string) (*Function, bool) {
	f, ok := m.Functions[name]
	return f, ok
}

// String describes the host settings with secrets hidden and the password of a
// postgres storage URL redacted, so that the value can be logged.
func (h Host) String() string {
	return fmt.Sprintf("{Listen:%s Storage:%s Workers:%d APIKey:%s LogFormat:%s LogLevel:%s Retention:%s Lease:%s ShutdownTimeout:%s MaxLogBytes:%d MaxBodyBytes:%d Dashboard:%+v}",
		h.Listen, h.RedactedStorage(), h.Workers, h.APIKey, h.LogFormat, h.LogLevel,
		h.Retention, h.Lease, h.ShutdownTimeout, h.MaxLogBytes, h.MaxBodyBytes, h.Dashboard)
}

// RedactedStorage returns Storage with the password of a URL replaced by "xxxxx".
func (h Host) RedactedStorage() string {
	return redactURL(h.Storage)
}

func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.Index(s, "://"); i >= 0 {
			return s[:i+3] + "…"
		}
		return "…"
	}
	return u.Redacted()
}

// fnInfo is what the checks across functions need to know beyond the Function itself.
type fnInfo struct {
	fn         *Function
	keyNode    *yaml.Node
	thenNodes  []*yaml.Node
	onFailNode *yaml.Node
}

// route is an HTTP trigger's route, for finding routes that collide.
type route struct {
	fn      string
	path    string
	pattern string
	methods []string
	node    *yaml.Node
}

// manifest decodes the root mapping.
func (d *decoder) manifest(root *yaml.Node) *Manifest {
	top, ok := d.mapping(root, "manifest", "the top level", topKeys)
	if !ok {
		return nil
	}
	m := &Manifest{Functions: map[string]*Function{}}

	if e, ok := top.get("version"); !ok {
		d.errorf(root, "version is required (add version: 1)")
	} else if v, ok := d.integer(e.value, "version"); ok {
		if v != 1 {
			d.errorf(e.value, "version: unsupported version %d (want 1)", v)
		}
		m.Version = int(v)
	}

	m.Host = d.host(top)

	defaults := Defaults{Timeout: DefaultTimeout, Retry: DefaultRetry()}
	if e, ok := top.get("defaults"); ok {
		dm, _ := d.mapping(e.value, "defaults", "defaults", defaultsKeys)
		d.durKey(dm, "timeout", 1, &defaults.Timeout)
		if e, ok := dm.get("retry"); ok {
			p := d.retry(e, "defaults.retry")
			defaults.Retry = p.apply(defaults.Retry)
			d.checkRetry(p, defaults.Retry)
		}
	}
	m.Defaults = defaults

	var infos []*fnInfo
	var routes []route
	e, ok := top.get("functions")
	if !ok {
		n := root
		if top.has("functions") {
			n = top.entries[top.index["functions"]].keyNode
		}
		d.errorf(n, "functions is required: a mapping of function names to functions, with at least one function")
		return m
	}
	fm, ok := d.mapping(e.value, "functions", "functions", nil)
	if !ok {
		return m
	}
	if len(fm.entries) == 0 {
		d.errorf(e.keyNode, "functions: at least one function is required")
	}
	for _, fe := range fm.entries {
		if !functionName.MatchString(fe.key) {
			d.errorf(fe.keyNode, "invalid function name %q: use 1 to 63 lowercase letters, digits, - and _, starting with a letter or digit", clip(fe.key))
		}
		info, rs := d.function(fe, defaults)
		infos = append(infos, info)
		routes = append(routes, rs...)
		m.Functions[fe.key] = info.fn
		m.Order = append(m.Order, fe.key)
	}
	d.checkContinuations(m, infos)
	d.checkRoutes(routes)
	return m
}

// host decodes the host section and fills in its defaults.
func (d *decoder) host(top *mapping) Host {
	h := Host{
		Listen:          DefaultListen,
		Storage:         DefaultStorage,
		Workers:         DefaultWorkers,
		LogFormat:       DefaultLogFormat,
		LogLevel:        DefaultLogLevel,
		Retention:       DefaultRetention,
		Lease:           DefaultLease,
		ShutdownTimeout: DefaultShutdownTimeout,
		MaxLogBytes:     DefaultMaxLogBytes,
		MaxBodyBytes:    DefaultMaxBodyBytes,
		Dashboard:       Dashboard{Enabled: true},
	}
	var hm *mapping
	hostNode := top.node
	if e, ok := top.get("host"); ok {
		hm, _ = d.mapping(e.value, "host", "host", hostKeys)
		hostNode = e.keyNode
	} else {
		hm = &mapping{index: map[string]int{}}
	}

	listenNode := hostNode
	listenOK := true
	if e, ok := hm.get("listen"); ok {
		listenNode = e.value
		listenOK = false
		if s, ok := d.str(e.value, "listen"); ok {
			if err := checkListen(s); err != nil {
				d.errorf(e.value, "listen: %v", err)
			} else {
				h.Listen, listenOK = s, true
			}
		}
	}

	storage := DefaultStorage
	storageNode := hostNode
	if e, ok := hm.get("storage"); ok {
		storageNode = e.value
		if s, ok := d.str(e.value, "storage"); ok {
			storage = s
		}
	}
	if s, err := NormalizeStorage(storage, d.dir); err != nil {
		d.errorf(storageNode, "storage: %v", err)
	} else {
		h.Storage = s
	}

	intKey(d, hm, "workers", 1, &h.Workers)
	apiKeyGiven := hm.has("api_key")
	d.secretKey(hm, "api_key", &h.APIKey)
	if e, ok := hm.get("log"); ok {
		lm, _ := d.mapping(e.value, "log", "host.log", logKeys)
		d.enumKey(lm, "format", []string{"text", "json"}, &h.LogFormat)
		d.enumKey(lm, "level", []string{"debug", "info", "warn", "error"}, &h.LogLevel)
	}
	d.durKey(hm, "retention", 1, &h.Retention)
	d.durKey(hm, "lease", time.Second, &h.Lease)
	d.durKey(hm, "shutdown_timeout", 0, &h.ShutdownTimeout)
	intKey(d, hm, "max_log_bytes", 1, &h.MaxLogBytes)
	intKey(d, hm, "max_body_bytes", 1, &h.MaxBodyBytes)
	if e, ok := hm.get("dashboard"); ok {
		dm, _ := d.mapping(e.value, "dashboard", "host.dashboard", dashKeys)
		d.boolKey(dm, "enabled", &h.Dashboard.Enabled)
		d.boolKey(dm, "read_only", &h.Dashboard.ReadOnly)
	}

	if listenOK && !isLoopback(h.Listen) && h.APIKey == "" {
		// An api_key that failed to expand is already reported.
		if e, ok := hm.get("api_key"); !ok || d.expand(e.value).ok {
			what := "is not set"
			if apiKeyGiven {
				what = "is empty"
			}
			d.errorf(listenNode, "api_key %s: host.api_key is required when listen (%s) is not a loopback address, to protect /api/v1 and the dashboard", what, h.Listen)
		}
	}
	return h
}

// checkListen checks a host:port address.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port such as 127.0.0.1:8080 or :8080", clip(s))
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("invalid host %q in %q", clip(host), clip(s))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("invalid port %q in %q: want a number from 0 to 65535", clip(port), clip(s))
	}
	return nil
}

// isLoopback reports whether a listen address only accepts local connections.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NormalizeStorage reads a storage location as host.storage does: sqlite:PATH, a bare
// path (both relative to dir), or a postgres:// or postgresql:// URL (its scheme in any
// case), and returns it in the form the stores open.
func NormalizeStorage(s, dir string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("must not be empty (want sqlite:PATH or postgres://...)")
	}
	lower := strings.ToLower(s)
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(lower, scheme) {
			u, err := url.Parse(s)
			if err != nil {
				// The parser's reason may quote part of the password.
				return "", fmt.Errorf("invalid postgres URL (check its syntax; special characters in the user name and password must be percent-encoded)")
			}
			u.Scheme = strings.ToLower(u.Scheme)
			return u.Scheme + s[len(u.Scheme):], nil
		}
	}
	if strings.HasPrefix(lower, "sqlite:") {
		p := strings.TrimPrefix(s[len("sqlite:"):], "//")
		if p == "" {
			return "", fmt.Errorf("sqlite: needs a path, e.g. sqlite:.fnhost/fnhost.db")
		}
		return "sqlite:" + sqlitePath(p, dir), nil
	}
	if m := urlScheme.FindStringSubmatch(s); m != nil {
		return "", fmt.Errorf("unsupported scheme %q (want sqlite:PATH, a file path, or postgres://...)", clip(m[1]))
	}
	return "sqlite:" + sqlitePath(s, dir), nil
}

func sqlitePath(p, dir string) string {
	if strings.HasPrefix(p, ":memory:") || strings.HasPrefix(p, "file:") || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// retryPatch is a retry section as written: the fields it sets.
type retryPatch struct {
	node            *yaml.Node
	maxAttempts     *int
	backoff         *string
	initialInterval *time.Duration
	maxInterval     *time.Duration
	jitter          *float64
}

// apply returns r with the fields the patch sets replaced.
func (p retryPatch) apply(r Retry) Retry {
	if p.maxAttempts != nil {
		r.MaxAttempts = *p.maxAttempts
	}
	if p.backoff != nil {
		r.Backoff = *p.backoff
	}
	if p.initialInterval != nil {
		r.InitialInterval = *p.initialInterval
	}
	if p.maxInterval != nil {
		r.MaxInterval = *p.maxInterval
	}
	if p.jitter != nil {
		r.Jitter = *p.jitter
	}
	return r
}

// retry decodes a retry section.
func (d *decoder) retry(e entry, where string) retryPatch {
	p := retryPatch{node: e.keyNode}
	rm, _ := d.mapping(e.value, "retry", where, retryKeys)
	var n int
	if intKey(d, rm, "max_attempts", 1, &n) {
		p.maxAttempts = &n
	}
	var b string
	if d.enumKey(rm, "backoff", []string{"exponential", "fixed"}, &b) {
		p.backoff = &b
	}
	var ii, mi time.Duration
	if d.durKey(rm, "initial_interval", 1, &ii) {
		p.initialInterval = &ii
	}
	if d.durKey(rm, "max_interval", 1, &mi) {
		p.maxInterval = &mi
	}
	if e, ok := rm.get("jitter"); ok {
		if j, ok := d.number(e.value, "jitter"); ok {
			if j < 0 || j > 1 {
				d.errorf(e.value, "jitter: must be from 0 to 1, got %v", j)
			} else {
				p.jitter = &j
			}
		}
	}
	return p
}

// checkRetry checks the policy that results from a patch, when the patch touches the
// intervals (otherwise a problem belongs to the defaults and is reported there).
func (d *decoder) checkRetry(p retryPatch, r Retry) {
	if p.initialInterval == nil && p.maxInterval == nil {
		return
	}
	if r.MaxInterval < r.InitialInterval {
		d.errorf(p.node, "retry: max_interval %v is less than initial_interval %v", r.MaxInterval, r.InitialInterval)
	}
}

// function decodes one function.
func (d *decoder) function(fe entry, defaults Defaults) (*fnInfo, []route) {
	name := fe.key
	where := fmt.Sprintf("function %q", clip(name))
	f := &Function{
		Name:    name,
		Timeout: defaults.Timeout,
		Retry:   defaults.Retry,
		Pos:     d.pos(fe.keyNode),
	}
	info := &fnInfo{fn: f, keyNode: fe.keyNode}
	fm, _ := d.mapping(fe.value, name, where, functionKeys)

	if e, ok := fm.get("handler"); ok {
		f.Handler = d.handler(e, name)
	} else {
		n := fe.keyNode
		if fm.has("handler") {
			n = fm.entries[fm.index["handler"]].keyNode
		}
		d.errorf(n, "function %q: handler is required (e.g. handler: {builtin: echo}, {exec: [./run.sh]} or {http: http://...})", clip(name))
	}
	d.durKey(fm, "timeout", 1, &f.Timeout)
	if e, ok := fm.get("retry"); ok {
		p := d.retry(e, fmt.Sprintf("the retry of function %q", clip(name)))
		f.Retry = p.apply(defaults.Retry)
		d.checkRetry(p, f.Retry)
	}
	intKey(d, fm, "concurrency", 0, &f.Concurrency)
	d.strKey(fm, "description", &f.Description)

	var routes []route
	if e, ok := fm.get("triggers"); ok {
		f.Triggers, routes = d.triggers(e, name)
	}
	if e, ok := fm.get("then"); ok {
		if e.value.Kind == yaml.ScalarNode {
			if s, ok := d.str(e.value, "then"); ok {
				f.Then = []string{s}
				info.thenNodes = []*yaml.Node{e.value}
			}
		} else if items, ok := d.sequence(e.value, "then"); ok {
			for _, it := range items {
				if s, ok := d.str(it, "then"); ok {
					f.Then = append(f.Then, s)
					info.thenNodes = append(info.thenNodes, it)
				}
			}
		}
	}
	if e, ok := fm.get("on_failure"); ok {
		if s, ok := d.str(e.value, "on_failure"); ok {
			f.OnFailure = s
			info.onFailNode = e.value
		}
	}
	return info, routes
}

// handler decodes a function's handler.
func (d *decoder) handler(e entry, fn string) Handler {
	h := Handler{Dir: d.dir}
	where := fmt.Sprintf("the handler of function %q", clip(fn))
	hm, ok := d.mapping(e.value, "handler", where, nil)
	if !ok {
		return h
	}
	var kinds []entry
	for _, k := range handlerKinds {
		if hm.has(k) {
			kinds = append(kinds, hm.entries[hm.index[k]])
		}
	}
	unknownKind := false
	for _, x := range hm.entries {
		if contains(handlerKeys, x.key) {
			continue
		}
		if len(kinds) == 0 {
			unknownKind = true
			msg := fmt.Sprintf("unknown handler kind %q in function %q (want builtin, exec or http)", clip(x.key), clip(fn))
			if s := suggest(x.key, handlerKeys); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.errorf(x.keyNode, "%s", msg)
			continue
		}
		d.unknownKey(x.keyNode, x.key, where, handlerKeys)
	}
	switch {
	case len(kinds) == 0:
		if !unknownKind {
			d.errorf(e.keyNode, "handler of function %q: want exactly one of builtin, exec or http", clip(fn))
		}
		return h
	case len(kinds) > 1:
		d.errorf(kinds[1].keyNode, "handler of function %q has both %s and %s: want exactly one of builtin, exec or http", clip(fn), kinds[0].key, kinds[1].key)
		return h
	}
	kind := kinds[0]
	switch kind.key {
	case "builtin":
		if s, ok := d.str(kind.value, "builtin"); ok {
			if strings.TrimSpace(s) == "" {
				d.errorf(kind.value, "builtin: want the name of a builtin function")
			}
			h.Builtin = s
		}
	case "exec":
		h.Exec = d.argv(kind.value)
		h.GracePeriod = DefaultGracePeriod
	case "http":
		if s, ok := d.str(kind.value, "http"); ok {
			if err := checkURL(s, "http", "https"); err != nil {
				d.errorf(kind.value, "http: %v", err)
			} else {
				h.HTTP = s
			}
		}
	}

	for _, key := range []string{"dir", "env", "permanent_exit_codes", "grace_period"} {
		if hm.has(key) && kind.key != "exec" {
			d.errorf(hm.entries[hm.index[key]].keyNode, "%s applies only to exec handlers, and function %q has %s %s handler", key, clip(fn), article(kind.key), kind.key)
		}
	}
	if hm.has("headers") && kind.key != "http" {
		d.errorf(hm.entries[hm.index["headers"]].keyNode, "headers applies only to http handlers, and function %q has %s %s handler", clip(fn), article(kind.key), kind.key)
	}
	if kind.key == "exec" {
		if x, ok := hm.get("dir"); ok {
			if s, ok := d.str(x.value, "dir"); ok {
				switch {
				case s == "":
					d.errorf(x.value, "dir: must not be empty")
				case filepath.IsAbs(s):
					h.Dir = filepath.Clean(s)
				default:
					h.Dir = filepath.Join(d.dir, s)
				}
			}
		}
		if x, ok := hm.get("env"); ok {
			em, _ := d.mapping(x.value, "env", "env", nil)
			for _, v := range em.entries {
				if !envName.MatchString(v.key) {
					d.errorf(v.keyNode, "env: invalid variable name %q (want letters, digits and _, not starting with a digit)", clip(v.key))
					continue
				}
				s := ""
				if !isNull(v.value) {
					var ok bool
					if s, ok = d.str(v.value, v.key); !ok {
						continue
					}
				}
				if h.Env == nil {
					h.Env = map[string]string{}
				}
				h.Env[v.key] = s
			}
		}
		if x, ok := hm.get("permanent_exit_codes"); ok {
			items, _ := d.sequence(x.value, "permanent_exit_codes")
			for _, it := range items {
				if c, ok := d.integer(it, "permanent_exit_codes"); ok {
					if c < 1 || c > 255 {
						d.errorf(it, "permanent_exit_codes: exit code %d is not from 1 to 255", c)
						continue
					}
					h.PermanentExitCodes = append(h.PermanentExitCodes, int(c))
				}
			}
		}
		d.durKey(hm, "grace_period", 0, &h.GracePeriod)
	}
	if kind.key == "http" {
		if x, ok := hm.get("headers"); ok {
			xm, _ := d.mapping(x.value, "headers", "headers", nil)
			for _, v := range xm.entries {
				if !validToken(v.key) {
					d.errorf(v.keyNode, "headers: invalid header name %q", clip(v.key))
					continue
				}
				s, ok := d.secret(v.value, v.key)
				if !ok {
					continue
				}
				if strings.ContainsAny(string(s), "\r\n\x00") {
					d.errorf(v.value, "headers: the value of %s contains a line break or NUL", v.key)
					continue
				}
				if h.Headers == nil {
					h.Headers = map[string]Secret{}
				}
				h.Headers[v.key] = s
			}
		}
	}
	return h
}

// article is the indefinite article for a handler kind.
func article(kind string) string {
	if kind == "exec" {
		return "an"
	}
	return "a"
}

// argv decodes the exec list.
func (d *decoder) argv(n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		d.errorf(n, "exec: want a list of arguments such as [python3, handler.py], not a string: no shell is used, so a string is never split into words")
		return nil
	}
	items, ok := d.sequence(n, "exec")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, "exec: want a non-empty list of arguments, the program first")
		return nil
	}
	argv := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := d.str(it, "exec")
		if !ok {
			return nil
		}
		if i == 0 {
			if s == "" {
				d.errorf(it, "exec: the program (first argument) must not be empty")
				return nil
			}
			if !filepath.IsAbs(s) && strings.ContainsRune(s, '/') {
				s = filepath.Join(d.dir, s)
			}
		}
		argv = append(argv, s)
	}
	return argv
}

// checkURL checks an absolute URL with a host and one of schemes. Its errors quote
// only the scheme, not the URL, which may hold credentials.
func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	if !contains(schemes, strings.ToLower(u.Scheme)) {
		if u.Scheme == "" {
			return fmt.Errorf("want an absolute %s URL such as %s://host:port/path", orList(schemes), schemes[0])
		}
		return fmt.Errorf("unsupported URL scheme %q (want %s)", clip(u.Scheme), orList(schemes))
	}
	if u.Host == "" {
		return fmt.Errorf("URL has no host")
	}
	return nil
}

// validToken reports whether s is an HTTP token, as a header name must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// Typed accessors for optional keys: each reads m[key] into *dst when the key is set
// and valid, reports problems, and returns whether *dst was set.

func (d *decoder) strKey(m *mapping, key string, dst *string) bool {
	e, ok := m.get(key)
	if !ok {
		return false
	}
	s, ok := d.str(e.value, key)
	if ok {
		*dst = s
	}
	return ok
}

func (d *decoder) secretKey(m *mapping, key string, dst *Secret) bool {
	e, ok := m.get(key)
	if !ok {
		return false
	}
	s, ok := d.secret(e.value, key)
	if ok {
		*dst = s
	}
	return ok
}

func (d *decoder) boolKey(m *mapping, key string, dst *bool) bool {
	e, ok := m.get(key)
	if !ok {
		return false
	}
	b, ok := d.boolean(e.value, key)
	if ok {
		*dst = b
	}
	return ok
}

func (d *decoder) enumKey(m *mapping, key string, allowed []string, dst *string) bool {
	e, ok := m.get(key)
	if !ok {
		return false
	}
	s, ok := d.enum(e.value, key, allowed)
	if ok {
		*dst = s
	}
	return ok
}

// durKey reads a duration of at least min; min 1 means "greater than zero".
func (d *decoder) durKey(m *mapping, key string, min time.Duration, dst *time.Duration) bool {
	e, ok := m.get(key)
	if !ok {
		return false
	}
	v, ok := d.duration(e.value, key)
	if !ok {
		return false
	}
	if v < min {
		if min == 1 {
			d.errorf(e.value, "%s: must be greater than 0", key)
		} else {
			d.errorf(e.value, "%s: must be at least %v, got %v", key, min, v)
		}
		return false
	}
	*dst = v
	return true
}

// intKey reads an integer of at least min.
func intKey[T int | int64](d *decoder, m *mapping, key string, min int64, dst *T) bool {
	e, ok := m.get(key)
	if !ok {
		return false
	}
	v, ok := d.integer(e.value, key)
	if !ok {
		return false
	}
	if v < min {
		if min == 0 {
			d.errorf(e.value, "%s: must not be negative, got %d", key, v)
		} else {
			d.errorf(e.value, "%s: must be at least %d, got %d", key, min, v)
		}
		return false
	}
	if int64(T(v)) != v {
		d.errorf(e.value, "%s: %d is too large", key, v)
		return false
	}
	*dst = T(v)
	return true
}
