package s3

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost/internal/httpjson"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/triggers"
)

// WebhookPath is where the host receives bucket notifications for every s3 trigger in
// webhook mode.
const WebhookPath = "/hooks/s3"

// refusedTotal counts the notification requests the receiver refused.
var refusedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "fnhost_s3_webhook_refused_total",
	Help: "Requests to the s3 webhook receiver that were refused, by reason (unauthorized, bad_request, too_large).",
}, []string{"reason"})

// receiver is the one webhook route of a host, shared by its s3 triggers.
type receiver struct {
	maxBody int64
	mu      sync.RWMutex
	trigs   []*Trigger
}

var (
	receiversMu sync.Mutex
	receivers   = map[triggers.Router]*receiver{}
)

// receiverFor returns the receiver mounted on router, mounting it on first use.
func receiverFor(router triggers.Router, m *manifest.Manifest) *receiver {
	receiversMu.Lock()
	defer receiversMu.Unlock()
	if r, ok := receivers[router]; ok {
		return r
	}
	r := &receiver{maxBody: manifest.DefaultMaxBodyBytes}
	if m != nil && m.Host.MaxBodyBytes > 0 {
		r.maxBody = m.Host.MaxBodyBytes
	}
	receivers[router] = r
	router.Handle(WebhookPath, r)
	return r
}

func (rc *receiver) add(t *Trigger) {
	rc.mu.Lock()
	rc.trigs = append(rc.trigs, t)
	rc.mu.Unlock()
}

// bearer extracts the token of an Authorization header: "Bearer <token>", or the bare
// token.
func bearer(h string) string {
	h = strings.TrimSpace(h)
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return h
}

// fromLoopback reports whether the request came from this machine.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// allowed returns the triggers the request may deliver to: those whose token it
// carries (in an Authorization header, or as ?token= for servers that cannot set
// headers), and those without a token when it comes from loopback.
func (rc *receiver) allowed(r *http.Request) []*Trigger {
	tok := bearer(r.Header.Get("Authorization"))
	if tok == "" {
		// For servers that cannot send a header (versitygw): the token in the URL.
		tok = r.URL.Query().Get("token")
	}
	loop := fromLoopback(r)
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	var out []*Trigger
	for _, t := range rc.trigs {
		want := t.cfg.Token.Reveal()
		switch {
		case want == "":
			if loop {
				out = append(out, t)
			}
		case tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1:
			out = append(out, t)
		}
	}
	return out
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost, http.MethodPut:
	case http.MethodGet, http.MethodHead:
		// Servers check that the endpoint answers before they send to it.
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, PUT")
		httpjson.WriteError(w, http.StatusMethodNotAllowed, httpjson.Error{Code: "method_not_allowed", Message: "method " + r.Method + " not allowed: send bucket notifications with POST"})
		return
	}
	trigs := rc.allowed(r)
	if len(trigs) == 0 {
		refusedTotal.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="fnhost s3"`)
		httpjson.WriteError(w, http.StatusUnauthorized, httpjson.Error{Code: "unauthorized", Message: "missing or wrong token: send the s3 trigger's token as Authorization: Bearer <token>"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			refusedTotal.WithLabelValues("too_large").Inc()
			httpjson.WriteError(w, http.StatusRequestEntityTooLarge, httpjson.Error{Code: "too_large", Message: fmt.Sprintf("notification larger than %d bytes", rc.maxBody)})
			return
		}
		httpjson.WriteError(w, http.StatusBadRequest, httpjson.Error{Code: "bad_request", Message: "reading the notification: " + err.Error()})
		return
	}
	recs, err := parseNotification(body, keyBySource)
	if err != nil {
		refusedTotal.WithLabelValues("bad_request").Inc()
		httpjson.WriteError(w, http.StatusBadRequest, httpjson.Error{Code: "bad_request", Message: err.Error()})
		return
	}
	submitted := 0
	for _, t := range trigs {
		n, err := t.accept(r.Context(), "webhook", recs, false)
		if err != nil {
			t.log.Error("s3: could not persist a notification; the server will send it again", "error", err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, httpjson.Error{Code: "unavailable", Message: "could not persist the notification, send it again: " + err.Error()})
			return
		}
		submitted += n
	}
	httpjson.Write(w, http.StatusOK, map[string]int{"records": len(recs), "submitted": submitted})
}
