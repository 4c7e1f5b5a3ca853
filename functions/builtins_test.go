package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/functions"
	"github.com/fnhost/fnhost/manifest"
)

func builtin(t *testing.T, name string) fnhost.Handler {
	t.Helper()
	return build(t, &manifest.Function{Handler: manifest.Handler{Builtin: name}}, functions.Options{})
}

func TestBuiltinsRegistered(t *testing.T) {
	t.Parallel()
	names := functions.Builtins.Names()
	for _, want := range []string{"echo", "fail", "noop", "panic", "sleep"} {
		if !slices.Contains(names, want) {
			t.Errorf("Builtins lacks %q: %v", want, names)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v, not sorted", names)
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	a := newAttempt(`{"name":"Ada"}`)
	res, err := a.invoke(t.Context(), builtin(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Output) != `{"name":"Ada"}` {
		t.Errorf("output = %s, want the data", res.Output)
	}
	if !strings.Contains(a.log.String(), a.ev.ID) {
		t.Errorf("log = %q, want a line naming the event", a.log)
	}
}

func TestNoop(t *testing.T) {
	t.Parallel()
	a := newAttempt(`{"name":"Ada"}`)
	res, err := a.invoke(t.Context(), builtin(t, "noop"))
	if err != nil || len(res.Output) != 0 || a.log.String() != "" {
		t.Errorf("noop = %q, %v, log %q; want nothing at all", res.Output, err, a.log)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	h := builtin(t, "fail")

	a := newAttempt(`{"name":"Ada"}`)
	_, err := a.invoke(t.Context(), h)
	if err == nil || !strings.Contains(err.Error(), "failed on purpose") || fnhost.IsPermanent(err) {
		t.Errorf("fail = %v, want a retryable 'failed on purpose'", err)
	}

	a = newAttempt(`{"message":"disk full","permanent":true}`)
	_, err = a.invoke(t.Context(), h)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !fnhost.IsPermanent(err) {
		t.Errorf("fail = %v, want a permanent 'disk full'", err)
	}

	for attempt := 1; attempt <= 4; attempt++ {
		a := newAttempt(`{"until_attempt":3}`)
		a.info.Attempt = attempt
		res, err := a.invoke(t.Context(), h)
		if attempt < 3 {
			if err == nil {
				t.Errorf("attempt %d succeeded, want a failure until attempt 3", attempt)
			}
			continue
		}
		if err != nil {
			t.Errorf("attempt %d failed: %v", attempt, err)
			continue
		}
		var out struct{ Attempt int }
		if json.Unmarshal(res.Output, &out); out.Attempt != attempt {
			t.Errorf("attempt %d output = %s", attempt, res.Output)
		}
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	h := builtin(t, "sleep")
	for _, data := range []string{`{"ms":1}`, `{"duration":"1ms"}`, `"1ms"`, `1`} {
		res, err := newAttempt(data).invoke(t.Context(), h)
		if err != nil {
			t.Errorf("sleep %s: %v", data, err)
			continue
		}
		if string(res.Output) != `{"slept":"1ms"}` {
			t.Errorf("sleep %s = %s", data, res.Output)
		}
	}
	for _, data := range []string{`{"duration":"soon"}`, `{"ms":-5}`, `{"other":1}`, `[1]`} {
		_, err := newAttempt(data).invoke(t.Context(), h)
		if !fnhost.IsPermanent(err) {
			t.Errorf("sleep %s = %v, want a permanent error", data, err)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	a := newAttempt(`{"duration":"1h"}`)
	done := make(chan error, 1)
	go func() { _, err := a.invoke(ctx, h); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled sleep = %v, want context.Canceled", err)
	}
}

func TestPanic(t *testing.T) {
	t.Parallel()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "boom") {
			t.Errorf("recovered %v, want a panic saying boom", p)
		}
	}()
	_, _ = newAttempt(`{"message":"boom"}`).invoke(t.Context(), builtin(t, "panic"))
	t.Error("panic returned")
}

func TestBuiltinUnknown(t *testing.T) {
	t.Parallel()
	_, err := functions.New(&manifest.Function{Name: "f", Handler: manifest.Handler{Builtin: "nope"}}, functions.Options{})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "echo, fail, noop, panic, sleep") {
		t.Errorf("error = %v, want one naming nope and listing the builtins", err)
	}
}

func TestBuiltinOutputCap(t *testing.T) {
	t.Parallel()
	fn := &manifest.Function{Handler: manifest.Handler{Builtin: "echo"}}
	h := build(t, fn, functions.Options{MaxOutputBytes: 5})
	_, err := newAttempt(`"too long"`).invoke(t.Context(), h)
	var tl *functions.OutputTooLargeError
	if !errors.As(err, &tl) {
		t.Errorf("error = %v, want an OutputTooLargeError", err)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := functions.NewRegistry()
	hello := fnhost.HandlerFunc(func(context.Context, fnhost.Event) (fnhost.Result, error) {
		return fnhost.Result{Output: []byte(`"mine"`)}, nil
	})
	if err := r.Register("hello", hello); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("hello", hello); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate Register = %v, want an error", err)
	}
	if err := r.Register("", hello); err == nil {
		t.Error("Register with an empty name succeeded")
	}
	if err := r.Register("nil", nil); err == nil {
		t.Error("Register of a nil handler succeeded")
	}
	if err := r.Register("echo", hello); err != nil {
		t.Fatal(err)
	}

	// A host layers its functions over the builtins; its own win.
	all := functions.Builtins.With(r)
	for _, name := range []string{"hello", "echo", "sleep"} {
		if _, ok := all.Lookup(name); !ok {
			t.Errorf("layered registry lacks %q", name)
		}
	}
	if _, ok := functions.Builtins.Lookup("hello"); ok {
		t.Error("With changed Builtins")
	}
	h := build(t, &manifest.Function{Handler: manifest.Handler{Builtin: "echo"}}, functions.Options{Registry: all})
	res, err := newAttempt(`{"x":1}`).invoke(t.Context(), h)
	if err != nil || string(res.Output) != `"mine"` {
		t.Errorf("echo from the layered registry = %s, %v; want the host's own", res.Output, err)
	}

	// Register, for init functions, panics on a duplicate.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Register of a duplicate builtin did not panic")
			}
		}()
		functions.Register("echo", hello)
	}()
}

func TestNewNeedsOneHandler(t *testing.T) {
	t.Parallel()
	for _, hc := range []manifest.Handler{
		{},
		{Builtin: "echo", HTTP: "http://localhost"},
	} {
		if _, err := functions.New(&manifest.Function{Name: "f", Handler: hc}, functions.Options{}); err == nil {
			t.Errorf("New(%+v) succeeded", hc)
		}
	}
	if _, err := functions.New(nil, functions.Options{}); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func BenchmarkBuiltinNoop(b *testing.B) {
	h := build(b, &manifest.Function{Handler: manifest.Handler{Builtin: "noop"}}, functions.Options{})
	ctx := fnhost.WithInfo(context.Background(), fnhost.Info{Attempt: 1})
	ev := fnhost.NewEvent("s", "t", "", nil)
	for b.Loop() {
		_, _ = h.Invoke(ctx, ev)
	}
}
