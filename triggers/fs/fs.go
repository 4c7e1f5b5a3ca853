// Package fs is the filesystem trigger: it watches a directory (and, with recursive,
// every directory below it, including ones created later) and submits an invocation for
// each file that appears, changes or disappears there.
//
//	triggers:
//	  - fs: {path: ./inbox, pattern: "*.csv", recursive: true, events: [created], settle: 500ms}
//
// What a user can rely on:
//
//   - pattern is a glob (path.Match syntax: *, ?, [a-z], \ escapes) matched against the
//     base name of each file, never against its directories. As in a shell, a name that
//     starts with a dot matches only a pattern that starts with a dot, so the temporary
//     files of editors and rsync (".name.XXXXXX") are left alone by "*" and "*.csv".
//     Directories are always descended when recursive is set.
//   - settle: a file is submitted once its size and modification time have not changed
//     for settle, so a file written slowly is processed once it is complete, never
//     half-written. A writer that pauses for longer than settle in the middle of a file
//     is indistinguishable from one that finished: choose settle above its pauses (or
//     write to a name the pattern does not match and rename when done).
//   - Each version of a file (its size and modification time) invokes the function once,
//     across restarts and across hosts that share the store: the trigger keeps a receipt
//     per function and relative path in the store. op is "created" when the file had no
//     receipt (or its last receipt was a deletion), "modified" when it had one with
//     another version, "deleted" when it is gone. Only the ops listed in events are
//     submitted; with "modified" left out, a changed file is not submitted again.
//   - existing: true submits, at start, every matching file whose current version has no
//     receipt: what was dropped while the host was down is not missed. With existing:
//     false (the default) the files present at start are the baseline and only what
//     changes afterwards is submitted (a file still being written at start is part of
//     the baseline: use existing: true where that matters).
//   - A rescan every rescan (default 30s), and at once when the kernel's event queue
//     overflows, walks the tree and catches whatever notifications missed: files changed
//     through a hard link elsewhere, directories fsnotify could not watch, network file
//     systems. Files whose version matches their receipt cost a batched read, no write.
//     With "deleted" in events, receipts of files that no longer exist produce deleted
//     invocations (the data then carries the last size and mtime seen); without it,
//     those receipts are dropped, so that a file that comes back counts as created.
//   - Nothing outside the root is ever submitted: event paths are checked to lie under
//     the root, and a symbolic link is followed only when it resolves to a regular file
//     inside the root (a symlink to a directory is never descended, which also rules out
//     loops). A file name that is not valid UTF-8 cannot round-trip through JSON; every
//     other name (spaces, newlines, leading dashes, any Unicode) does.
//   - What cannot be submitted (the store is down) stays pending and is tried again with
//     a growing delay; nothing is dropped. Without inotify (out of instances), the
//     trigger still works from the rescan alone.
//
// The event is a CloudEvent with source "fnhost/fs/<function>", type
// "fnhost.fs.<op>", subject the relative path, and data
//
//	{"path": "sub/a.csv", "abs_path": "/srv/inbox/sub/a.csv", "size": 1234,
//	 "mtime": "2024-05-01T10:00:00.123456789Z", "op": "created"}
//
// where path is relative to the watched directory and slash-separated. The receipt key
// is that relative path (prefixed with the watched directory when a function has
// several fs triggers) and its version "<size>:<mtime in Unix nanoseconds>"; a
// deletion is recorded as the version "deleted".
//
// The trigger is meant for a local file system, or for a network share that every host
// of the store mounts at the same path: the receipts of one function are keyed by
// relative path, so hosts watching different local directories for the same function
// would see each other's files as deleted.
package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/triggers"
)

// Kind is the trigger's manifest name.
const Kind = "fs"

// The ops of an fs event.
const (
	OpCreated  = "created"
	OpModified = "modified"
	OpDeleted  = "deleted"
)

const (
	// deletedVersion is the receipt version of a file whose deletion was recorded.
	deletedVersion = "deleted"
	// lookupBatch is how many receipts are read in one store call.
	lookupBatch = 1000
	// submitBatch is how many invocations are submitted in one call.
	submitBatch = 500
	// maxQueued bounds the notifications waiting for the trigger's loop; beyond it
	// they are dropped and a rescan is made instead.
	maxQueued = 1 << 16
	// minRescan keeps a tiny rescan interval from spinning.
	minRescan = 10 * time.Millisecond
	// rootRetry is how often a missing watched directory is looked for.
	rootRetry = time.Second
	// maxRetryDelay caps the delay before a failed submission is tried again.
	maxRetryDelay = 30 * time.Second
)

func init() {
	triggers.Register(Kind, New)
}

// eventsTotal counts the submitted file events of every fs trigger of the process.
var eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "fnhost_fs_events_total",
	Help: "File events the fs trigger submitted as invocations, by function and op (created, modified, deleted).",
}, []string{"function", "op"})

// counter registers eventsTotal with reg once and returns the vector to count with.
func counter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	if reg == nil {
		return eventsTotal, nil
	}
	if err := reg.Register(eventsTotal); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
		return nil, err
	}
	return eventsTotal, nil
}

// Trigger watches one directory for one function. Build it with New (or through the
// triggers registry) and Run it once: its state lives in the goroutine of Run.
type Trigger struct {
	fn        string
	root      string // absolute and clean, as configured
	pattern   string
	recursive bool
	ops       map[string]bool
	settle    time.Duration
	rescanIn  time.Duration
	existing  bool
	keyPrefix string
	source    string

	sub     triggers.Submitter
	st      store.Store
	log     *slog.Logger
	counter *prometheus.CounterVec

	// The state below belongs to the goroutine of Run.
	w          *fsnotify.Watcher
	realRoot   string // root with its symbolic links resolved
	rootOK     bool   // the root is watched
	rootWarned bool
	// dirs are the watched directories, by relative path ("." is the root).
	dirs map[string]bool
	// known maps a relative path to the version of the file that is accounted for: its
	// receipt holds it, or it is part of the baseline (existing: false), or its op is
	// not in events. deletedVersion marks a file known to be gone.
	known map[string]string
	// pending are the files waiting to settle or to be submitted again.
	pending map[string]*entry
	due     dueHeap
	// receiptsBaseline is false while the receipts of files that vanished before an
	// existing: false start have not been read yet.
	receiptsBaseline bool
	nextRescan       time.Time
	watchErrs        int
	firstWatchErr    error
	// ready is closed once the tree is watched and the start-up scan is done.
	ready chan struct{}
}

var _ triggers.Trigger = (*Trigger)(nil)

// New builds an fs trigger from its manifest entry.
func New(env triggers.Env) (triggers.Trigger, error) {
	if env.Function == nil {
		return nil, errors.New("fs trigger: no function")
	}
	name := env.Function.Name
	c := env.Trigger.FS
	if c == nil {
		return nil, fmt.Errorf("function %q: fs trigger without its settings", name)
	}
	if env.Submitter == nil || env.Store == nil {
		return nil, fmt.Errorf("function %q: fs trigger needs a submitter and a store", name)
	}
	if c.Path == "" || !filepath.IsAbs(c.Path) {
		return nil, fmt.Errorf("function %q: fs trigger: path %q must be absolute", name, c.Path)
	}
	pattern := c.Pattern
	if pattern == "" {
		pattern = "*"
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("function %q: fs trigger: invalid pattern %q: %v", name, pattern, err)
	}
	events := c.Events
	if len(events) == 0 {
		events = []string{OpCreated}
	}
	ops := map[string]bool{}
	for _, e := range events {
		switch e {
		case OpCreated, OpModified, OpDeleted:
			ops[e] = true
		default:
			return nil, fmt.Errorf("function %q: fs trigger: unknown event %q (want created, modified or deleted)", name, e)
		}
	}
	if c.Settle < 0 {
		return nil, fmt.Errorf("function %q: fs trigger: settle must not be negative", name)
	}
	rescan := c.Rescan
	if rescan <= 0 {
		rescan = manifest.DefaultRescan
	}
	rescan = max(rescan, minRescan)
	vec, err := counter(env.Registerer)
	if err != nil {
		return nil, fmt.Errorf("function %q: fs trigger: metrics: %w", name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := filepath.Clean(c.Path)
	t := &Trigger{
		fn: name, root: root, pattern: pattern, recursive: c.Recursive, ops: ops,
		settle: c.Settle, rescanIn: rescan, existing: c.Existing, source: "fnhost/fs/" + name,
		sub: env.Submitter, st: env.Store, log: log, counter: vec, ready: make(chan struct{}),
	}
	// Receipt keys are relative paths; a function watching several directories keeps
	// them apart by the directory.
	n := 0
	for _, tr := range env.Function.Triggers {
		if tr.FS != nil {
			n++
		}
	}
	if n > 1 {
		t.keyPrefix = strings.TrimSuffix(filepath.ToSlash(root), "/") + "/"
	}
	return t, nil
}

// Run watches the directory until ctx is done, then closes the watcher and returns nil.
func (t *Trigger) Run(ctx context.Context) error {
	t.dirs = map[string]bool{}
	t.known = map[string]string{}
	t.pending = map[string]*entry{}
	t.due = nil
	in := newInbox()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		// Out of inotify instances, say: the rescan alone still finds every file.
		t.log.Error("fs: cannot watch for notifications; relying on the periodic rescan alone",
			"path", t.root, "rescan", t.rescanIn, "err", err)
	} else {
		t.w = w
		pumped := make(chan struct{})
		go func() {
			defer close(pumped)
			in.pump(w)
		}()
		defer func() {
			_ = w.Close()
			<-pumped
		}()
	}

	t.start(ctx)
	close(t.ready)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake := t.nextRescan
		if at, ok := t.due.next(); ok && at.Before(wake) {
			wake = at
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return nil
		case <-in.signal:
			evs, overflow, errs := in.take()
			for _, err := range errs {
				t.log.Warn("fs: watcher error", "path", t.root, "err", err)
			}
			for _, ev := range evs {
				t.handle(ev.Event, ev.at)
			}
			if overflow {
				t.log.Warn("fs: file notifications overflowed; rescanning", "path", t.root)
				t.nextRescan = time.Now()
			}
		case <-timer.C:
		}
		if ctx.Err() != nil {
			return nil
		}
		if !time.Now().Before(t.nextRescan) {
			t.rescan(ctx)
		}
		t.flush(ctx)
	}
}

// start watches the tree and takes the baseline (existing: false) or looks for the
// files that have no receipt yet (existing: true).
func (t *Trigger) start(ctx context.Context) {
	t.setupRoot()
	if t.rootOK {
		t.log.Info("fs: watching", "path", t.root, "pattern", t.pattern, "recursive", t.recursive, "existing", t.existing)
	}
	if t.existing {
		t.receiptsBaseline = true
		t.rescan(ctx)
		return
	}
	if t.rootOK {
		t.baseline(ctx)
	} else {
		// Everything in a directory that appears later is new.
		t.receiptsBaseline = true
	}
	t.scheduleRescan()
}

func (t *Trigger) scheduleRescan() {
	d := t.rescanIn
	if !t.rootOK {
		d = min(d, rootRetry)
	}
	t.nextRescan = time.Now().Add(d)
}

// inbox decouples fsnotify from the trigger's loop: the watcher never blocks on a busy
// loop, and a loop that falls too far behind is told to rescan.
type inbox struct {
	mu       sync.Mutex
	events   []arrival
	errs     []error
	overflow bool
	signal   chan struct{}
}

func newInbox() *inbox { return &inbox{signal: make(chan struct{}, 1)} }

func (b *inbox) pump(w *fsnotify.Watcher) {
	evs, errs := w.Events, w.Errors
	for evs != nil || errs != nil {
		select {
		case ev, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			b.mu.Lock()
			if len(b.events) >= maxQueued {
				b.overflow = true
			} else {
				b.events = append(b.events, arrival{ev, time.Now()})
			}
			b.mu.Unlock()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			b.mu.Lock()
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				b.overflow = true
			} else if len(b.errs) < 16 {
				b.errs = append(b.errs, err)
			}
			b.mu.Unlock()
		}
		select {
		case b.signal <- struct{}{}:
		default:
		}
	}
}

// arrival is a notification and when it arrived: a file settles from there, however
// busy the trigger's loop was when it got to it.
type arrival struct {
	fsnotify.Event
	at time.Time
}

func (b *inbox) take() ([]arrival, bool, []error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs, overflow, errs := b.events, b.overflow, b.errs
	b.events, b.overflow, b.errs = nil, false, nil
	return evs, overflow, errs
}
