package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
)

// CloudEventsContentType is the media type of the structured CloudEvent an http
// handler POSTs.
const CloudEventsContentType = "application/cloudevents+json; charset=utf-8"

// The request headers through which an http handler's endpoint learns about the
// invocation, beside the event itself. They mirror the FNHOST_* variables of exec
// handlers.
const (
	HeaderFunction     = "Fnhost-Function"
	HeaderInvocationID = "Fnhost-Invocation-Id"
	HeaderAttempt      = "Fnhost-Attempt"
	HeaderMaxAttempts  = "Fnhost-Max-Attempts"
	HeaderTrigger      = "Fnhost-Trigger"
	HeaderDeadline     = "Fnhost-Deadline"
)

const (
	// errorBodyBytes is how much of a failed response's body is read and logged.
	errorBodyBytes = 4096
	// errorExcerptBytes is how much of it goes into the error message.
	errorExcerptBytes = 200
	// keepAliveDrain is how much of a response's unread body is drained so that its
	// connection can serve the next request.
	keepAliveDrain = 64 << 10
)

// StatusError is the failure of an http handler whose endpoint answered with a status
// other than 2xx. 408, 429 and 5xx are retried; the others come wrapped with
// fnhost.Permanent.
type StatusError struct {
	// StatusCode is the response's status code, Status its status line ("404 Not Found").
	StatusCode int
	Status     string
	// Body is the start of the response's body, on one line.
	Body string
}

// Error reads "HTTP 503 Service Unavailable: <start of the body>".
func (e *StatusError) Error() string {
	if e.Body == "" {
		return "HTTP " + e.Status
	}
	return "HTTP " + e.Status + ": " + e.Body
}

// Retryable reports whether the status may succeed on another attempt.
func (e *StatusError) Retryable() bool {
	return retryableStatus(e.StatusCode)
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// sharedHTTPClient is the client of every http handler built without Options.HTTPClient,
// so that they share one pool of kept-alive connections.
var sharedHTTPClient = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{
		Transport: t,
		// Follow only redirects that keep the POST and its body (307, 308); a redirect
		// that turns it into a GET would drop the event, so it fails the attempt.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.Method != http.MethodPost {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
})

// httpHandler POSTs the event to a URL as a structured CloudEvent.
type httpHandler struct {
	name      string
	url       string
	shown     string // the URL with any password redacted, for logs and errors
	headers   http.Header
	client    *http.Client
	maxOutput int
}

var _ fnhost.Handler = (*httpHandler)(nil)

func newHTTP(fn *manifest.Function, opts Options) (*httpHandler, error) {
	raw := fn.Handler.HTTP
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("http: bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http: bad URL %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("http: bad URL %s: no host", u.Redacted())
	}
	headers := make(http.Header, len(fn.Handler.Headers))
	for k, v := range fn.Handler.Headers {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("http: invalid header name %q", k)
		}
		if strings.ContainsAny(v.Reveal(), "\r\n\x00") {
			return nil, fmt.Errorf("http: header %s: value contains a line break or NUL", k)
		}
		headers.Set(k, v.Reveal())
	}
	client := opts.HTTPClient
	if client == nil {
		client = sharedHTTPClient()
	}
	return &httpHandler{
		name:      fn.Name,
		url:       u.String(),
		shown:     u.Redacted(),
		headers:   headers,
		client:    client,
		maxOutput: opts.maxOutput(),
	}, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Invoke POSTs the event and reads the answer: 2xx is success with the body as output;
// 408, 429, 5xx, network errors and timeouts fail the attempt for a retry; any other
// status fails it permanently.
func (h *httpHandler) Invoke(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return fnhost.Result{}, fnhost.Permanent(fmt.Errorf("encode event: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fnhost.Result{}, fnhost.Permanent(err)
	}
	h.setHeaders(ctx, req.Header)

	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		// The client's error names the method and the URL (without its password).
		fnhost.Logf(ctx, "%v", err)
		return fnhost.Result{}, err
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, keepAliveDrain)
		_ = resp.Body.Close()
	}()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var r io.Reader = resp.Body
		if h.maxOutput >= 0 {
			r = io.LimitReader(resp.Body, int64(h.maxOutput)+1)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			fnhost.Logf(ctx, "POST %s: %s, reading the body: %v", h.shown, resp.Status, err)
			return fnhost.Result{}, fmt.Errorf("read response: %w", err)
		}
		fnhost.Logf(ctx, "POST %s: %s, %d bytes of %s in %s", h.shown, resp.Status, len(out),
			orNone(resp.Header.Get("Content-Type")), time.Since(start).Round(time.Millisecond))
		if h.maxOutput >= 0 && len(out) > h.maxOutput {
			return fnhost.Result{}, fmt.Errorf("response: %w", &OutputTooLargeError{Limit: h.maxOutput})
		}
		return fnhost.Result{Output: out, ContentType: resp.Header.Get("Content-Type")}, nil
	}

	data, rerr := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
	fnhost.Logf(ctx, "POST %s: %s in %s", h.shown, resp.Status, time.Since(start).Round(time.Millisecond))
	if len(data) > 0 {
		fnhost.Logf(ctx, "%s", data)
	}
	if rerr != nil {
		fnhost.Logf(ctx, "reading the body: %v", rerr)
	}
	se := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status, Body: excerpt(data, errorExcerptBytes)}
	err = se
	if se.Retryable() {
		return fnhost.Result{}, err
	}
	return fnhost.Result{}, fnhost.Permanent(err)
}

// setHeaders sets the manifest's headers, then the protocol's, which take precedence.
func (h *httpHandler) setHeaders(ctx context.Context, hdr http.Header) {
	for k, v := range h.headers {
		hdr[k] = v
	}
	info, _ := fnhost.InfoFrom(ctx)
	function := info.Function
	if function == "" {
		function = h.name
	}
	hdr.Set("Content-Type", CloudEventsContentType)
	hdr.Set("User-Agent", "fnhost/"+fnhost.Version)
	hdr.Set(HeaderFunction, function)
	if info.InvocationID != "" {
		hdr.Set(HeaderInvocationID, info.InvocationID)
	}
	if info.Attempt > 0 {
		hdr.Set(HeaderAttempt, strconv.Itoa(info.Attempt))
	}
	if info.MaxAttempts > 0 {
		hdr.Set(HeaderMaxAttempts, strconv.Itoa(info.MaxAttempts))
	}
	if info.Trigger != "" {
		hdr.Set(HeaderTrigger, info.Trigger)
	}
	deadline := info.Deadline
	if deadline.IsZero() {
		deadline, _ = ctx.Deadline()
	}
	if !deadline.IsZero() {
		hdr.Set(HeaderDeadline, deadline.UTC().Format(time.RFC3339Nano))
	}
}

// excerpt returns the start of b on one line, at most n bytes, cut at a rune boundary.
func excerpt(b []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func orNone(s string) string {
	if s == "" {
		return "no content type"
	}
	return s
}
