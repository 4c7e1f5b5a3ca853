// Package functions builds the handler of a function from its manifest entry: a builtin
// Go function looked up by name in a Registry, a process run per attempt (exec), or a
// POST of the event to a URL (http). It also holds the builtin functions every fnhost
// binary carries: echo, noop, sleep, fail and panic.
//
// Handlers built here do not retry, recover panics or enforce timeouts of their own:
// the executor does, through the context it passes and the errors it gets back. They
// classify their failures instead: an error wrapped with fnhost.Permanent must not be
// retried; any other error may be.
package functions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
)

// DefaultMaxOutputBytes caps the output of one attempt unless Options say otherwise.
const DefaultMaxOutputBytes = 1 << 20

// Options tune the handlers that New builds. The zero value is ready to use.
type Options struct {
	// Registry holds the builtin functions (default Builtins).
	Registry *Registry
	// HTTPClient sends the requests of http handlers (default: a client shared by all
	// handlers, with keep-alives and no timeout of its own: the attempt's context
	// bounds each request).
	HTTPClient *http.Client
	// MaxOutputBytes caps the output of one attempt (default DefaultMaxOutputBytes; a
	// negative value means no cap). A larger output fails the attempt with an
	// *OutputTooLargeError.
	MaxOutputBytes int
}

func (o Options) maxOutput() int {
	switch {
	case o.MaxOutputBytes == 0:
		return DefaultMaxOutputBytes
	case o.MaxOutputBytes < 0:
		return -1
	}
	return o.MaxOutputBytes
}

// OutputTooLargeError fails an attempt whose output exceeds Options.MaxOutputBytes.
type OutputTooLargeError struct {
	// Limit is the cap in bytes.
	Limit int
}

// Error reports the cap.
func (e *OutputTooLargeError) Error() string {
	return fmt.Sprintf("output exceeds %d bytes", e.Limit)
}

// New builds the handler of fn. It checks what can be checked before the first
// invocation: the builtin is registered, the exec program exists and is executable
// (a program named without a slash is looked up in PATH, a relative path with a slash
// is taken relative to fn.Handler.Dir), the working directory exists, the URL is an
// absolute http or https URL.
func New(fn *manifest.Function, opts Options) (fnhost.Handler, error) {
	if fn == nil {
		return nil, errors.New("build handler: nil function")
	}
	var kinds []string
	if fn.Handler.Builtin != "" {
		kinds = append(kinds, "builtin")
	}
	if len(fn.Handler.Exec) > 0 {
		kinds = append(kinds, "exec")
	}
	if fn.Handler.HTTP != "" {
		kinds = append(kinds, "http")
	}
	switch len(kinds) {
	case 0:
		return nil, fmt.Errorf("function %q: no handler (want one of builtin, exec, http)", fn.Name)
	case 1:
	default:
		return nil, fmt.Errorf("function %q: several handler kinds (%s), want exactly one", fn.Name, strings.Join(kinds, ", "))
	}
	var (
		h   fnhost.Handler
		err error
	)
	switch kinds[0] {
	case "builtin":
		h, err = newBuiltin(fn, opts)
	case "exec":
		h, err = newExec(fn, opts)
	case "http":
		h, err = newHTTP(fn, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("function %q: %w", fn.Name, err)
	}
	return h, nil
}

// builtinHandler calls a registered Go function and holds its output to the cap.
type builtinHandler struct {
	name      string
	h         fnhost.Handler
	maxOutput int
}

var _ fnhost.Handler = (*builtinHandler)(nil)

func newBuiltin(fn *manifest.Function, opts Options) (*builtinHandler, error) {
	reg := opts.Registry
	if reg == nil {
		reg = Builtins
	}
	name := fn.Handler.Builtin
	h, ok := reg.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown builtin %q (known: %s)", name, strings.Join(reg.Names(), ", "))
	}
	return &builtinHandler{name: name, h: h, maxOutput: opts.maxOutput()}, nil
}

// Invoke calls the builtin function. Its panics are not recovered here.
func (b *builtinHandler) Invoke(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
	res, err := b.h.Invoke(ctx, ev)
	if err != nil {
		return res, fmt.Errorf("builtin %s: %w", b.name, err)
	}
	if b.maxOutput >= 0 && len(res.Output) > b.maxOutput {
		return fnhost.Result{}, fmt.Errorf("builtin %s: %w", b.name, &OutputTooLargeError{Limit: b.maxOutput})
	}
	return res, nil
}
