package functions

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fnhost/fnhost"
)

// Registry maps names to builtin functions: the targets of `handler: {builtin: NAME}`.
// It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]fnhost.Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]fnhost.Handler)}
}

// Register adds h under name. It fails when name is empty or blank, when h is nil, or
// when name is taken.
func (r *Registry) Register(name string, h fnhost.Handler) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("register builtin: empty name")
	}
	if h == nil {
		return fmt.Errorf("register builtin %q: nil handler", name)
	}
	if f, ok := h.(fnhost.HandlerFunc); ok && f == nil {
		return fmt.Errorf("register builtin %q: nil handler", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.handlers[name]; dup {
		return fmt.Errorf("register builtin %q: already registered", name)
	}
	r.handlers[name] = h
	return nil
}

// Lookup returns the function registered under name.
func (r *Registry) Lookup(name string) (fnhost.Handler, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[name]
	return h, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	names := make([]string, 0, len(r.handlers))
	for name := range r.handlers {
		names = append(names, name)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}

// With returns a new registry holding the functions of r and of other, other's taking
// precedence where both use a name. A host layers its own functions over the defaults
// with Builtins.With(own). Neither r nor other is changed, and later registrations in
// them do not show in the result. Either may be nil.
func (r *Registry) With(other *Registry) *Registry {
	out := NewRegistry()
	for _, src := range []*Registry{r, other} {
		if src == nil {
			continue
		}
		src.mu.RLock()
		for name, h := range src.handlers {
			out.handlers[name] = h
		}
		src.mu.RUnlock()
	}
	return out
}

// Builtins is the registry of the functions every fnhost binary carries: echo, noop,
// sleep, fail and panic, plus whatever packages add with Register in their init.
var Builtins = NewRegistry()

// Register adds fn to Builtins under name. It is meant for init functions, like
// database/sql drivers, and panics when name is empty or already taken.
func Register(name string, fn fnhost.HandlerFunc) {
	if err := Builtins.Register(name, fn); err != nil {
		panic("functions: " + err.Error())
	}
}
