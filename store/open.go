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

// Migrator brings the schema of the store at location to the version this fnhost
// knows, and returns how many migrations it applied and that version.
type Migrator func(ctx context.Context, location string) (applied, version int, err error)

type driver struct {
	open    Opener
	migrate Migrator
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]driver{}
)

// Register makes a store implementation available under a URL scheme ("sqlite",
// "postgres"), with the function that opens it and the one that migrates it alone.
// Implementations call it from init; registering a scheme twice panics.
func Register(scheme string, open Opener, migrate Migrator) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[scheme]; dup {
		panic("store: scheme registered twice: " + scheme)
	}
	drivers[scheme] = driver{open, migrate}
}

// Open opens the store named by location, "scheme:rest" (sqlite:/path/to/db,
// postgres://user@host/db), applying the migrations it lacks. The scheme's
// implementation must be registered (imported).
func Open(ctx context.Context, location string) (Store, error) {
	d, err := driverOf(location)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return d.open(ctx, location)
}

// Migrate brings the schema of the store named by location to the version this fnhost
// knows (`fnhost migrate`), and returns how many migrations it applied and that
// version. A schema newer than this fnhost knows is an error.
func Migrate(ctx context.Context, location string) (applied, version int, err error) {
	d, err := driverOf(location)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate store: %w", err)
	}
	return d.migrate(ctx, location)
}

// driverOf is the implementation of location's scheme (postgresql is postgres).
func driverOf(location string) (driver, error) {
	scheme, _, ok := strings.Cut(location, ":")
	if !ok {
		return driver{}, fmt.Errorf("%q has no scheme (want sqlite:PATH or postgres://…)", location)
	}
	if scheme == "postgresql" {
		scheme = "postgres"
	}
	driversMu.RLock()
	d, ok := drivers[scheme]
	driversMu.RUnlock()
	if !ok {
		return driver{}, fmt.Errorf("no store for scheme %q (have %s)", scheme, strings.Join(Schemes(), ", "))
	}
	return d, nil
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
