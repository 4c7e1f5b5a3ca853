package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Opener opens a store from the location in the manifest's host.storage setting.
type Opener func(ctx context.Context, location string) (Store, error)

var (
	driversMu sync.RWMutex
	drivers   = map[string]Opener{}
)

// Register makes a store implementation available under a URL scheme ("sqlite",
// "postgres"). Implementations call it from init; registering a scheme twice panics.
func Register(scheme string, open Opener) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[scheme]; dup {
		panic("store: scheme registered twice: " + scheme)
	}
	drivers[scheme] = open
}

// Open opens the store named by location, "scheme:rest" (sqlite:/path/to/db,
// postgres://user@host/db). The scheme's implementation must be registered (imported).
func Open(ctx context.Context, location string) (Store, error) {
	scheme, _, ok := strings.Cut(location, ":")
	if !ok {
		return nil, fmt.Errorf("open store: %q has no scheme (want sqlite:PATH or postgres://…)", location)
	}
	if scheme == "postgresql" {
		scheme = "postgres"
	}
	driversMu.RLock()
	open, ok := drivers[scheme]
	driversMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("open store: no store for scheme %q (have %s)", scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, location)
}

// Schemes lists the registered schemes.
func Schemes() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	out := make([]string, 0, len(drivers))
	for s := range drivers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
