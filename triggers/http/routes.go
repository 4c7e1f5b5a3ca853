package http

import (
	"fmt"
	nethttp "net/http"
	"strings"

	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/triggers"
)

// goPattern turns a manifest path into the path of a ServeMux pattern. A path ending in
// a slash matches only itself (ServeMux would take it as a prefix); {name...} is the way
// to match a subtree.
func goPattern(path string) string {
	if strings.HasSuffix(path, "/") {
		return path + "{$}"
	}
	return path
}

// wildcards lists the names of a path's wildcards: id in /items/{id}, rest in
// /files/{rest...}.
func wildcards(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' {
			continue
		}
		name := strings.TrimSuffix(seg[1:len(seg)-1], "...")
		if name != "$" && name != "" {
			out = append(out, name)
		}
	}
	return out
}

// handle mounts h on router, turning ServeMux's panic on a conflicting pattern into an
// error.
func handle(router triggers.Router, pattern string, h nethttp.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	router.Handle(pattern, h)
	return nil
}

// hostPatterns are the host's own routes, which a fallback must never conflict with.
var hostPatterns = []string{"/api/", "GET /healthz", "GET /readyz", "GET /metrics", "/dashboard/", "/dashboard"}

// fallback answers requests whose path matches an HTTP trigger's route but whose method
// matches none, the way ServeMux does (405 and an Allow header), with a JSON error.
type fallback struct {
	// methods holds the method patterns of every HTTP trigger of the manifest, for the
	// Allow header: ServeMux computes it exactly as it does for its own 405.
	methods *nethttp.ServeMux
	// safe lists the paths whose fallback conflicts with no other pattern.
	safe map[string]bool
}

// newFallback builds the fallback of the HTTP triggers of m, or returns nil without a
// manifest.
func newFallback(m *manifest.Manifest) *fallback {
	if m == nil {
		return nil
	}
	fb := &fallback{methods: nethttp.NewServeMux(), safe: map[string]bool{}}
	probe := nethttp.NewServeMux()
	for _, p := range hostPatterns {
		_ = handle(probe, p, fb)
	}
	var paths []string
	seen := map[string]bool{}
	for _, name := range m.Order {
		f := m.Functions[name]
		if f == nil {
			continue
		}
		for _, tr := range f.Triggers {
			if tr.HTTP == nil || tr.HTTP.Path == "" {
				continue
			}
			path := goPattern(tr.HTTP.Path)
			methods := tr.HTTP.Methods
			if len(methods) == 0 {
				methods = []string{nethttp.MethodPost}
			}
			for _, method := range methods {
				p := strings.ToUpper(method) + " " + path
				_ = handle(fb.methods, p, fb)
				_ = handle(probe, p, fb)
			}
			if !seen[path] {
				seen[path] = true
				paths = append(paths, path)
			}
		}
	}
	for _, path := range paths {
		// A path led by a wildcard could overlap routes the host adds later.
		if strings.HasPrefix(path, "/{") && path != "/{$}" {
			continue
		}
		if handle(probe, path, fb) == nil {
			fb.safe[path] = true
		}
	}
	return fb
}

// covers reports whether the fallback may be mounted for path.
func (fb *fallback) covers(path string) bool { return fb.safe[path] }

// ServeHTTP answers 405 with the methods the path allows.
func (fb *fallback) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	h, pattern := fb.methods.Handler(r)
	rec := &headerRecorder{header: nethttp.Header{}}
	if pattern == "" {
		h.ServeHTTP(rec, r)
	}
	if rec.status != nethttp.StatusMethodNotAllowed {
		writeError(w, nethttp.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path), "")
		return
	}
	allow := rec.header.Get("Allow")
	w.Header().Set("Allow", allow)
	writeError(w, nethttp.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow), "")
}

// headerRecorder keeps the status and headers of an answer and drops its body.
type headerRecorder struct {
	header nethttp.Header
	status int
}

func (h *headerRecorder) Header() nethttp.Header { return h.header }

func (h *headerRecorder) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(nethttp.StatusOK)
	return len(b), nil
}
