package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	nethttp "net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The reasons of fnhost_http_trigger_refused_total.
const (
	reasonMissingKey       = "missing_key"
	reasonBadKey           = "bad_key"
	reasonMissingSignature = "missing_signature"
	reasonBadSignature     = "bad_signature"
	reasonTooLarge         = "body_too_large"
)

// reasons lists the refusals this route can make, so that its counters show from the
// start at zero.
func (t *Trigger) reasons() []string {
	out := []string{reasonTooLarge}
	if t.keyHash != nil {
		out = append(out, reasonMissingKey, reasonBadKey)
	}
	if t.hmacSecret != nil {
		out = append(out, reasonMissingSignature, reasonBadSignature)
	}
	return out
}

// refusedCounter returns the refusal counter registered with reg: a new one, or the
// one another trigger of the same host registered first. Without a registerer the
// counter counts for no one.
func refusedCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fnhost_http_trigger_refused_total",
		Help: "Requests to HTTP triggers refused before an invocation was persisted, by function and reason.",
	}, []string{"function", "reason"})
	if reg == nil {
		return v, nil
	}
	if err := reg.Register(v); err != nil {
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return v, nil
}

func (t *Trigger) refuse(r *nethttp.Request, reason string) {
	t.refused.WithLabelValues(t.function, reason).Inc()
	t.log.Debug("request refused", "reason", reason, "method", r.Method, "path", r.URL.Path, "remote_addr", r.RemoteAddr)
}

// checkKey answers 401 unless the request carries the route's key in the X-Fnhost-Key
// header or the code query parameter.
func (t *Trigger) checkKey(w nethttp.ResponseWriter, r *nethttp.Request) bool {
	got := r.Header.Get(KeyHeader)
	if got == "" {
		got = r.URL.Query().Get(KeyParam)
	}
	reason, msg := "", ""
	if got == "" {
		reason = reasonMissingKey
		msg = fmt.Sprintf("this route requires a key: send it in the %s header or the %s query parameter", KeyHeader, KeyParam)
	} else {
		h := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(h[:], t.keyHash) == 1 {
			return true
		}
		reason = reasonBadKey
		msg = fmt.Sprintf("the key is not valid for this route (send it in the %s header or the %s query parameter)", KeyHeader, KeyParam)
	}
	t.refuse(r, reason)
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Key realm="fnhost", header=%q`, KeyHeader))
	writeError(w, nethttp.StatusUnauthorized, "unauthorized", msg, "")
	return false
}

// checkSignature answers 401 unless the signature header holds the HMAC-SHA256 of the
// raw body under the route's secret, as sha256=<hex> or bare hex.
func (t *Trigger) checkSignature(w nethttp.ResponseWriter, r *nethttp.Request, body []byte) bool {
	const want = "sha256=<hex of the HMAC-SHA256 of the raw body>"
	got := strings.TrimSpace(r.Header.Get(t.hmacHeader))
	reason, msg := "", ""
	if got == "" {
		reason = reasonMissingSignature
		msg = fmt.Sprintf("this route requires a signature in the %s header: %s", t.hmacHeader, want)
	} else if sig, ok := parseSignature(got); !ok {
		reason = reasonBadSignature
		msg = fmt.Sprintf("the %s header is not a SHA-256 signature: want %s", t.hmacHeader, want)
	} else {
		mac := hmac.New(sha256.New, t.hmacSecret)
		mac.Write(body)
		if hmac.Equal(sig, mac.Sum(nil)) {
			return true
		}
		reason = reasonBadSignature
		msg = fmt.Sprintf("the signature in the %s header does not match the body: want %s", t.hmacHeader, want)
	}
	t.refuse(r, reason)
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`HMAC-SHA256 realm="fnhost", header=%q`, t.hmacHeader))
	writeError(w, nethttp.StatusUnauthorized, "bad_signature", msg, "")
	return false
}

// parseSignature decodes "sha256=<hex>" or a bare hex SHA-256 digest.
func parseSignature(s string) ([]byte, bool) {
	if alg, hexed, ok := strings.Cut(s, "="); ok {
		if !strings.EqualFold(alg, "sha256") {
			return nil, false
		}
		s = hexed
	}
	if len(s) != 2*sha256.Size {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}
