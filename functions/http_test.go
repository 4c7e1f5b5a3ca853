package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/manifest"
)

// received is what the test server saw of a request.
type received struct {
	method string
	header http.Header
	body   []byte
}

// endpoint starts a server answering with handler, reporting each request on the
// returned channel.
func endpoint(t *testing.T, handler http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{method: r.Method, header: r.Header.Clone(), body: body}
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func httpFunction(url string) *manifest.Function {
	return &manifest.Function{Name: "fn", Handler: manifest.Handler{HTTP: url}}
}

func TestHTTPSuccess(t *testing.T) {
	t.Parallel()
	srv, got := endpoint(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "hello Ada")
	})
	fn := httpFunction(srv.URL + "/hook?x=1")
	fn.Handler.Headers = map[string]manifest.Secret{"Authorization": "Bearer s3cret", "X-Team": "blue"}
	h := build(t, fn, functions.Options{})
	a := newAttempt(`{"name":"Ada"}`)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := a.invoke(ctx, h)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if string(res.Output) != "hello Ada" || res.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("result = %q (%s), want hello Ada as text/plain", res.Output, res.ContentType)
	}
	if !strings.Contains(a.log.String(), "200 OK") {
		t.Errorf("log does not show the response:\n%s", a.log)
	}
	if strings.Contains(a.log.String(), "s3cret") {
		t.Errorf("log shows a secret header:\n%s", a.log)
	}

	req := <-got
	if req.method != http.MethodPost {
		t.Errorf("method = %s, want POST", req.method)
	}
	want := map[string]string{
		"Content-Type":         "application/cloudevents+json; charset=utf-8",
		"Authorization":        "Bearer s3cret",
		"X-Team":               "blue",
		"Fnhost-Function":      "fn",
		"Fnhost-Invocation-Id": a.info.InvocationID,
		"Fnhost-Attempt":       "2",
		"Fnhost-Max-Attempts":  "5",
		"Fnhost-Trigger":       "http",
		"Fnhost-Deadline":      a.info.Deadline.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range want {
		if got := req.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	var ev fnhost.Event
	if err := json.Unmarshal(req.body, &ev); err != nil {
		t.Fatalf("body is not a CloudEvent: %v\n%s", err, req.body)
	}
	if err := ev.Validate(); err != nil {
		t.Errorf("body: %v", err)
	}
	if ev.ID != a.ev.ID || ev.Type != a.ev.Type || ev.Source != a.ev.Source || string(ev.Data) != `{"name":"Ada"}` {
		t.Errorf("body event = %+v, want %+v", ev, a.ev)
	}
}

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
		{http.StatusTooManyRequests, false},
		{http.StatusRequestTimeout, false},
		{http.StatusNotFound, true},
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusUnprocessableEntity, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			srv, _ := endpoint(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "something went wrong\nsee the logs", tc.status)
			})
			h := build(t, httpFunction(srv.URL), functions.Options{})
			a := newAttempt(`{}`)
			_, err := a.invoke(t.Context(), h)
			var se *functions.StatusError
			if !errors.As(err, &se) || se.StatusCode != tc.status {
				t.Fatalf("error = %v, want a StatusError with %d", err, tc.status)
			}
			if got := fnhost.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v (error %v)", got, tc.permanent, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, strconv.Itoa(tc.status)) || !strings.Contains(msg, "something went wrong see the logs") {
				t.Errorf("error %q lacks the status or the body excerpt", msg)
			}
			if !strings.Contains(a.log.String(), "something went wrong\nsee the logs") {
				t.Errorf("log lacks the response body:\n%s", a.log)
			}
		})
	}
}

func TestHTTPRedirectToGETFails(t *testing.T) {
	t.Parallel()
	srv, _ := endpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, r.Method)
	})
	h := build(t, httpFunction(srv.URL+"/old"), functions.Options{})
	_, err := newAttempt(`{}`).invoke(t.Context(), h)
	if !fnhost.IsPermanent(err) || !strings.Contains(err.Error(), "302") {
		t.Errorf("error = %v, want a permanent 302 failure", err)
	}

	// 307 keeps the POST and its body: it is followed.
	srv, _ = endpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
			return
		}
		_, _ = io.Copy(w, r.Body)
	})
	h = build(t, httpFunction(srv.URL+"/old"), functions.Options{})
	res, err := newAttempt(`{"a":1}`).invoke(t.Context(), h)
	if err != nil || !strings.Contains(string(res.Output), `"data":{"a":1}`) {
		t.Errorf("307: result %s, %v; want the event back", res.Output, err)
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	h := build(t, httpFunction(url), functions.Options{})
	a := newAttempt(`{}`)
	_, err := a.invoke(t.Context(), h)
	if err == nil {
		t.Fatal("Invoke succeeded against a closed server")
	}
	if fnhost.IsPermanent(err) {
		t.Errorf("error %v is permanent, want it retried", err)
	}
	if !strings.Contains(a.log.String(), "refused") {
		t.Errorf("log does not tell of the failure:\n%s", a.log)
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	srv, _ := endpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	h := build(t, httpFunction(srv.URL), functions.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := newAttempt(`{}`).invoke(ctx, h)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want one wrapping context.DeadlineExceeded", err)
	}
	if fnhost.IsPermanent(err) {
		t.Errorf("a timeout is retried, but the error is permanent")
	}
}

func TestHTTPOutputTooLarge(t *testing.T) {
	t.Parallel()
	srv, _ := endpoint(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
	})
	h := build(t, httpFunction(srv.URL), functions.Options{MaxOutputBytes: 999})
	_, err := newAttempt(`{}`).invoke(t.Context(), h)
	var tl *functions.OutputTooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "output exceeds 999 bytes") {
		t.Errorf("error = %v, want an OutputTooLargeError", err)
	}
	h = build(t, httpFunction(srv.URL), functions.Options{MaxOutputBytes: 1000})
	if res, err := newAttempt(`{}`).invoke(t.Context(), h); err != nil || len(res.Output) != 1000 {
		t.Errorf("at the cap: %d bytes, %v; want 1000 bytes", len(res.Output), err)
	}
}

func TestHTTPCustomClient(t *testing.T) {
	t.Parallel()
	srv, got := endpoint(t, func(w http.ResponseWriter, r *http.Request) {})
	client := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r.Header.Set("X-Through", "custom")
		return http.DefaultTransport.RoundTrip(r)
	})}
	h := build(t, httpFunction(srv.URL), functions.Options{HTTPClient: client})
	if _, err := newAttempt(`{}`).invoke(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if req := <-got; req.header.Get("X-Through") != "custom" {
		t.Error("the request did not go through Options.HTTPClient")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHTTPBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		handler manifest.Handler
		want    string
	}{
		{manifest.Handler{HTTP: "ftp://example.com/x"}, "scheme"},
		{manifest.Handler{HTTP: "http://"}, "no host"},
		{manifest.Handler{HTTP: "/relative"}, "scheme"},
		{manifest.Handler{HTTP: "http://user:pw@[::1"}, "bad URL"},
		{manifest.Handler{HTTP: "http://localhost", Headers: map[string]manifest.Secret{"Bad Name": "x"}}, "Bad Name"},
		{manifest.Handler{HTTP: "http://localhost", Headers: map[string]manifest.Secret{"X-Ok": "a\r\nb"}}, "X-Ok"},
	} {
		_, err := functions.New(&manifest.Function{Name: "f", Handler: tc.handler}, functions.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v, want one about %s", tc.handler, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q shows the URL's password", err)
		}
	}
}
