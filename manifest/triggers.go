package manifest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// cronParser accepts 5 fields, 6 with leading seconds, and descriptors (@hourly,
// @every 30s).
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a cron schedule the way the manifest accepts it: 5 fields, 6 with
// leading seconds, or a descriptor such as @daily or @every 30s. The time zone is not
// part of the schedule: the schedule's Next works in the location of the time it is
// given, so callers pass times in the trigger's Timezone.
func ParseCron(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("invalid schedule: %v", r)
		}
	}()
	t := strings.TrimSpace(spec)
	if t == "" {
		return nil, errors.New("empty schedule")
	}
	if strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return nil, errors.New("set the time zone with timezone:, not TZ= in the schedule")
	}
	return cronParser.Parse(t)
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// reservedPrefixes are paths of the host's own endpoints, which no trigger may take.
var reservedPrefixes = []string{"/api/", "/dashboard", "/metrics", "/healthz", "/readyz"}

// triggers decodes a function's list of triggers and returns the routes of its HTTP
// triggers.
func (d *decoder) triggers(e entry, fn string) ([]Trigger, []route) {
	items, ok := d.sequence(e.value, "triggers")
	if !ok {
		return nil, nil
	}
	var out []Trigger
	var routes []route
	for _, it := range items {
		tm, ok := d.mapping(it, "trigger", "trigger", nil)
		if !ok {
			continue
		}
		var kinds, others []entry
		for _, x := range tm.entries {
			if contains(triggerKinds, x.key) {
				kinds = append(kinds, x)
			} else {
				others = append(others, x)
			}
		}
		if len(tm.entries) == 0 {
			d.errorf(it, "trigger of function %q is empty: want one of %s", clip(fn), orList(triggerKinds))
			continue
		}
		for _, x := range others {
			if len(kinds) == 0 {
				msg := fmt.Sprintf("unknown trigger kind %q in function %q (want one of %s)", clip(x.key), clip(fn), orList(triggerKinds))
				if s := suggest(x.key, triggerKinds); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				d.errorf(x.keyNode, "%s", msg)
				continue
			}
			d.errorf(x.keyNode, "trigger of function %q has key %q next to %s: a list item holds exactly one of %s, and the settings of %s go under it",
				clip(fn), clip(x.key), kinds[0].key, orList(triggerKinds), kinds[0].key)
		}
		if len(kinds) > 1 {
			d.errorf(kinds[1].keyNode, "trigger of function %q has both %s and %s: put each trigger in its own list item", clip(fn), kinds[0].key, kinds[1].key)
		}
		if len(kinds) != 1 {
			continue
		}
		k := kinds[0]
		t := Trigger{Kind: k.key, Pos: d.pos(it)}
		where := fmt.Sprintf("the %s trigger of function %q", k.key, clip(fn))
		switch k.key {
		case "http":
			var r *route
			t.HTTP, r = d.httpTrigger(k, fn, where)
			if r != nil {
				routes = append(routes, *r)
			}
		case "cron":
			t.Cron = d.cronTrigger(k, where)
		case "fs":
			t.FS = d.fsTrigger(k, where)
		case "s3":
			t.S3 = d.s3Trigger(k, where)
		case "queue":
			t.Queue = d.queueTrigger(k, where)
		}
		out = append(out, t)
	}
	return out, routes
}

// required reports a missing key of the mapping held by e.
func (d *decoder) required(e entry, m *mapping, key, where, hint string) {
	n := e.keyNode
	if m.has(key) {
		n = m.entries[m.index[key]].keyNode
	}
	d.errorf(n, "%s is required in %s%s", key, where, hint)
}

func (d *decoder) httpTrigger(e entry, fn, where string) (*HTTPTrigger, *route) {
	t := &HTTPTrigger{Methods: []string{"POST"}, Mode: "async"}
	m, ok := d.mapping(e.value, "http", where, httpKeys)
	if !ok {
		return t, nil
	}
	var r *route
	if x, ok := m.get("path"); !ok {
		d.required(e, m, "path", where, " (e.g. path: /hooks/"+fn+")")
	} else if p, ok := d.str(x.value, "path"); ok {
		if pattern, err := routePattern(p); err != nil {
			d.errorf(x.value, "path: %v", err)
		} else {
			t.Path = p
			r = &route{fn: fn, path: p, pattern: pattern, node: x.value}
		}
	}
	if x, ok := m.get("methods"); ok {
		items, ok := d.sequence(x.value, "methods")
		if ok && len(items) == 0 {
			d.errorf(x.value, "methods: must not be empty (leave it out for [POST])")
			ok = false
		}
		var methods []string
		for _, it := range items {
			s, good := d.str(it, "methods")
			if !good {
				ok = false
				continue
			}
			u := strings.ToUpper(strings.TrimSpace(s))
			if !contains(httpMethods, u) {
				d.errorf(it, "methods: unknown HTTP method %q (want %s)", clip(s), orList(httpMethods))
				ok = false
				continue
			}
			if contains(methods, u) {
				d.errorf(it, "methods: %s is listed twice", u)
				continue
			}
			methods = append(methods, u)
		}
		if ok {
			t.Methods = methods
		}
	}
	if r != nil {
		r.methods = t.Methods
	}
	d.enumKey(m, "mode", []string{"sync", "async"}, &t.Mode)
	if x, ok := m.get("auth"); ok {
		t.Auth = d.httpAuth(x, where)
	}
	intKey(d, m, "max_body_bytes", 1, &t.MaxBodyBytes)
	return t, r
}

func (d *decoder) httpAuth(e entry, where string) HTTPAuth {
	var a HTTPAuth
	where = "the auth of " + where
	m, ok := d.mapping(e.value, "auth", where, authKeys)
	if !ok {
		return a
	}
	if m.has("key") && m.has("hmac") {
		d.errorf(m.entries[max(m.index["key"], m.index["hmac"])].keyNode, "auth: set key or hmac, not both")
	}
	if x, ok := m.get("key"); ok {
		if s, ok := d.secret(x.value, "key"); ok {
			if s == "" {
				d.errorf(x.value, "auth: key is empty")
			}
			a.Key = s
		}
	}
	if x, ok := m.get("hmac"); ok {
		hm, ok := d.mapping(x.value, "hmac", "hmac of "+where, hmacKeys)
		if !ok {
			return a
		}
		h := &HMACAuth{Header: DefaultHMACHeader}
		if y, ok := hm.get("secret"); !ok {
			d.required(x, hm, "secret", "hmac", "")
		} else if s, ok := d.secret(y.value, "secret"); ok {
			if s == "" {
				d.errorf(y.value, "hmac: secret is empty")
			}
			h.Secret = s
		}
		if y, ok := hm.get("header"); ok {
			if s, ok := d.str(y.value, "header"); ok {
				if !validToken(s) {
					d.errorf(y.value, "header: invalid header name %q", clip(s))
				} else {
					h.Header = s
				}
			}
		}
		a.HMAC = h
	}
	return a
}

// routePattern checks an HTTP trigger's path and returns it with wildcard names
// erased, so that /a/{id} and /a/{name} compare equal.
func routePattern(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q must start with /", clip(p))
	}
	if p == "/api" {
		return "", fmt.Errorf("%q is reserved for the host's API", p)
	}
	if p == "/hooks/s3" || strings.HasPrefix(p, "/hooks/s3/") {
		return "", fmt.Errorf("%q is reserved for the s3 trigger's receiver", p)
	}
	for _, r := range reservedPrefixes {
		if strings.HasPrefix(p, r) {
			return "", fmt.Errorf("%q is reserved for the host's own endpoints (paths starting with %s)", clip(p), strings.Join(reservedPrefixes, ", "))
		}
	}
	if strings.ContainsAny(p, " \t\r\n?#\x00") {
		return "", fmt.Errorf("%q must not contain spaces, ? or #", clip(p))
	}
	segs := strings.Split(p[1:], "/")
	names := map[string]bool{}
	for i, seg := range segs {
		last := i == len(segs)-1
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("%q must not contain . or .. segments", clip(p))
		}
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		if len(seg) < 2 || seg[0] != '{' || seg[len(seg)-1] != '}' {
			return "", fmt.Errorf("%q: a wildcard must be a whole segment, like /items/{id}", clip(p))
		}
		name := seg[1 : len(seg)-1]
		norm := "{}"
		switch {
		case name == "$":
			if !last {
				return "", fmt.Errorf("%q: {$} may only end the path", clip(p))
			}
			norm = "{$}"
		case strings.HasSuffix(name, "..."):
			if !last {
				return "", fmt.Errorf("%q: {%s} may only be the last segment", clip(p), clip(name))
			}
			name = strings.TrimSuffix(name, "...")
			norm = "{...}"
		}
		if norm != "{$}" {
			if !isIdent(name) {
				return "", fmt.Errorf("%q: invalid wildcard name %q", clip(p), clip(name))
			}
			if names[name] {
				return "", fmt.Errorf("%q: wildcard {%s} appears twice", clip(p), name)
			}
			names[name] = true
		}
		segs[i] = norm
	}
	return "/" + strings.Join(segs, "/"), nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i], i == 0) {
			return false
		}
	}
	return true
}

func (d *decoder) cronTrigger(e entry, where string) *CronTrigger {
	t := &CronTrigger{Missed: "one", Overlap: "skip"}
	m, ok := d.mapping(e.value, "cron", where, cronKeys)
	if !ok {
		return t
	}
	if x, ok := m.get("schedule"); !ok {
		d.required(e, m, "schedule", where, ` (e.g. schedule: "0 2 * * *" or "@every 1h")`)
	} else if s, ok := d.str(x.value, "schedule"); ok {
		if _, err := ParseCron(s); err != nil {
			d.errorf(x.value, "schedule: invalid cron schedule %q: %v", clip(s), err)
		} else {
			t.Schedule = s
		}
	}
	if x, ok := m.get("timezone"); ok {
		if s, ok := d.str(x.value, "timezone"); ok {
			if _, err := time.LoadLocation(s); err != nil || s == "" {
				d.errorf(x.value, "timezone: unknown time zone %q (want an IANA name such as Europe/Rome, or UTC)", clip(s))
			} else {
				t.Timezone = s
			}
		}
	}
	d.enumKey(m, "missed", []string{"one", "all", "skip"}, &t.Missed)
	d.enumKey(m, "overlap", []string{"skip", "allow", "queue"}, &t.Overlap)
	return t
}

func (d *decoder) fsTrigger(e entry, where string) *FSTrigger {
	t := &FSTrigger{Pattern: "*", Events: []string{"created"}, Settle: DefaultSettle, Rescan: DefaultRescan}
	m, ok := d.mapping(e.value, "fs", where, fsKeys)
	if !ok {
		return t
	}
	if x, ok := m.get("path"); !ok {
		d.required(e, m, "path", where, " (the directory to watch)")
	} else if s, ok := d.str(x.value, "path"); ok {
		switch {
		case s == "":
			d.errorf(x.value, "path: must not be empty")
		case filepath.IsAbs(s):
			t.Path = filepath.Clean(s)
		default:
			t.Path = filepath.Join(d.dir, s)
		}
	}
	if x, ok := m.get("pattern"); ok {
		if s, ok := d.str(x.value, "pattern"); ok {
			if _, err := filepath.Match(s, ""); err != nil || s == "" {
				d.errorf(x.value, "pattern: invalid glob %q", clip(s))
			} else {
				t.Pattern = s
			}
		}
	}
	d.boolKey(m, "recursive", &t.Recursive)
	if x, ok := m.get("events"); ok {
		if ev, ok := d.events(x, []string{"created", "modified", "deleted"}, false); ok {
			t.Events = ev
		}
	}
	d.durKey(m, "settle", 0, &t.Settle)
	d.boolKey(m, "existing", &t.Existing)
	d.durKey(m, "rescan", 1, &t.Rescan)
	return t
}

// events decodes a non-empty list of event names from allowed; raw also allows S3
// event names such as s3:ObjectCreated:*.
func (d *decoder) events(e entry, allowed []string, raw bool) ([]string, bool) {
	items, ok := d.sequence(e.value, "events")
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		d.errorf(e.value, "events: must not be empty (leave it out for [created])")
		return nil, false
	}
	var out []string
	for _, it := range items {
		s, good := d.str(it, "events")
		if !good {
			ok = false
			continue
		}
		if !contains(allowed, s) && !(raw && s3EventName.MatchString(s)) {
			want := orList(allowed)
			if raw {
				want = strings.Join(allowed, ", ") + " or an S3 event name such as s3:ObjectCreated:*"
			}
			msg := fmt.Sprintf("events: unknown event %q (want %s)", clip(s), want)
			if sg := suggest(s, allowed); sg != "" {
				msg += fmt.Sprintf("; did you mean %q?", sg)
			}
			d.errorf(it, "%s", msg)
			ok = false
			continue
		}
		if contains(out, s) {
			d.errorf(it, "events: %s is listed twice", s)
			continue
		}
		out = append(out, s)
	}
	return out, ok
}

func (d *decoder) s3Trigger(e entry, where string) *S3Trigger {
	t := &S3Trigger{Region: DefaultS3Region, Events: []string{"created"}, Mode: "webhook", Interval: DefaultS3Interval, Reconcile: DefaultS3Reconcile}
	m, ok := d.mapping(e.value, "s3", where, s3Keys)
	if !ok {
		return t
	}
	if x, ok := m.get("endpoint"); ok {
		if s, ok := d.str(x.value, "endpoint"); ok {
			if err := checkURL(s, "http", "https"); err != nil {
				d.errorf(x.value, "endpoint: %v", err)
			} else {
				t.Endpoint = s
			}
		}
	}
	d.strKey(m, "region", &t.Region)
	if x, ok := m.get("bucket"); !ok {
		d.required(e, m, "bucket", where, "")
	} else if s, ok := d.str(x.value, "bucket"); ok {
		if s == "" || strings.ContainsAny(s, "/ \t\r\n") {
			d.errorf(x.value, "bucket: invalid bucket name %q", clip(s))
		} else {
			t.Bucket = s
		}
	}
	d.strKey(m, "prefix", &t.Prefix)
	d.strKey(m, "suffix", &t.Suffix)
	if x, ok := m.get("events"); ok {
		if ev, ok := d.events(x, []string{"created", "removed"}, true); ok {
			t.Events = ev
		}
	}
	d.secretKey(m, "access_key", &t.AccessKey)
	d.secretKey(m, "secret_key", &t.SecretKey)
	d.secretKey(m, "token", &t.Token)
	modeOK := d.enumKey(m, "mode", []string{"webhook", "listen", "poll", "sqs"}, &t.Mode) || !m.has("mode")
	d.durKey(m, "interval", 1, &t.Interval)
	if x, ok := m.get("queue_url"); ok {
		if s, ok := d.str(x.value, "queue_url"); ok {
			if err := checkURL(s, "https", "http"); err != nil {
				d.errorf(x.value, "queue_url: %v", err)
			} else {
				t.QueueURL = s
			}
		}
	}
	d.boolKey(m, "path_style", &t.PathStyle)
	d.boolKey(m, "insecure", &t.Insecure)
	d.boolKey(m, "download", &t.Download)
	d.strKey(m, "profile", &t.Profile)
	if x, ok := m.get("ca_file"); ok {
		if s, ok := d.str(x.value, "ca_file"); ok {
			if s == "" {
				d.errorf(x.value, "ca_file: want the path of a PEM file")
			} else {
				t.CAFile = s
				if !filepath.IsAbs(s) {
					t.CAFile = filepath.Join(d.dir, s)
				}
			}
		}
	}
	d.durKey(m, "reconcile", time.Second, &t.Reconcile)
	if x, ok := m.get("target"); ok {
		if s, ok := d.str(x.value, "target"); ok {
			if !s3Target.MatchString(s) {
				d.errorf(x.value, "target: invalid MinIO target ID %q: use letters, digits, - and _", clip(s))
			} else {
				t.Target = s
			}
		}
	}

	if modeOK {
		if m.has("reconcile") && t.Mode == "poll" {
			d.errorf(m.entries[m.index["reconcile"]].keyNode, "reconcile applies to the push modes (webhook, listen, sqs): mode: poll lists the bucket every interval")
		}
		if m.has("target") && t.Mode != "webhook" {
			d.errorf(m.entries[m.index["target"]].keyNode, "target applies only to mode: webhook (this trigger's mode is %s)", t.Mode)
		}
		if m.has("target") && !m.has("endpoint") {
			d.required(e, m, "endpoint", where, " with target (the MinIO server to configure)")
		}
		if m.has("interval") && t.Mode != "poll" {
			d.errorf(m.entries[m.index["interval"]].keyNode, "interval applies only to mode: poll (this trigger's mode is %s)", t.Mode)
		}
		if m.has("queue_url") && t.Mode != "sqs" {
			d.errorf(m.entries[m.index["queue_url"]].keyNode, "queue_url applies only to mode: sqs (this trigger's mode is %s)", t.Mode)
		}
		if t.Mode == "sqs" && !m.has("queue_url") {
			d.required(e, m, "queue_url", where, " with mode: sqs")
		}
		if t.Mode == "listen" && !m.has("endpoint") {
			d.required(e, m, "endpoint", where, " with mode: listen (the MinIO server to listen to)")
		}
	}
	if m.has("access_key") != m.has("secret_key") {
		missing := "secret_key"
		if !m.has("access_key") {
			missing = "access_key"
		}
		d.errorf(e.keyNode, "%s: access_key and secret_key go together, and %s is missing", where, missing)
	}
	return t
}

func (d *decoder) queueTrigger(e entry, where string) *QueueTrigger {
	t := &QueueTrigger{}
	m, ok := d.mapping(e.value, "queue", where, queueKeys)
	if !ok {
		return t
	}
	if x, ok := m.get("name"); !ok {
		d.required(e, m, "name", where, "")
	} else if s, ok := d.str(x.value, "name"); ok {
		if !queueName.MatchString(s) {
			d.errorf(x.value, "name: invalid queue name %q: use 1 to 128 letters, digits, ., - and _, starting with a letter or digit", clip(s))
		} else {
			t.Name = s
		}
	}
	return t
}

// checkRoutes reports HTTP triggers whose routes collide: the same path pattern with a
// method in common.
func (d *decoder) checkRoutes(routes []route) {
	byPattern := map[string][]route{}
	for _, r := range routes {
		dup := false
		for _, prev := range byPattern[r.pattern] {
			if m := commonMethod(prev.methods, r.methods); m != "" {
				d.errorf(r.node, "path: duplicate route %s %s: function %q already has %s %s at line %d, column %d",
					m, clip(r.path), clip(prev.fn), m, clip(prev.path), prev.node.Line, prev.node.Column)
				dup = true
				break
			}
		}
		if !dup {
			byPattern[r.pattern] = append(byPattern[r.pattern], r)
		}
	}
}

func commonMethod(a, b []string) string {
	for _, x := range a {
		if contains(b, x) {
			return x
		}
	}
	return ""
}

// checkContinuations checks that then and on_failure name other, existing functions.
func (d *decoder) checkContinuations(m *Manifest, infos []*fnInfo) {
	for _, info := range infos {
		f := info.fn
		var seen []string
		for i, name := range f.Then {
			n := info.thenNodes[i]
			if !d.checkRef(m, f.Name, "then", name, n) {
				continue
			}
			if contains(seen, name) {
				d.errorf(n, "then: %q is listed twice", clip(name))
				continue
			}
			seen = append(seen, name)
		}
		if info.onFailNode != nil {
			d.checkRef(m, f.Name, "on_failure", f.OnFailure, info.onFailNode)
		}
	}
}

func (d *decoder) checkRef(m *Manifest, self, key, name string, n *yaml.Node) bool {
	switch {
	case name == "":
		d.errorf(n, "%s: want the name of a function", key)
	case name == self:
		d.errorf(n, "%s: function %q cannot continue with itself", key, clip(name))
	default:
		if _, ok := m.Functions[name]; ok {
			return true
		}
		msg := fmt.Sprintf("%s: no function named %q", key, clip(name))
		if s := suggest(name, m.Order); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		d.errorf(n, "%s", msg)
	}
	return false
}
