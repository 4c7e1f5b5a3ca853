package fs

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// setupRoot watches the root when it exists.
func (t *Trigger) setupRoot() {
	fi, err := os.Stat(t.root)
	if err == nil && !fi.IsDir() {
		err = &fs.PathError{Op: "watch", Path: t.root, Err: errNotDir}
	}
	var real string
	if err == nil {
		real, err = filepath.EvalSymlinks(t.root)
	}
	if err == nil {
		t.realRoot = real
		delete(t.dirs, ".")
		if !t.watch(".") {
			err = t.firstWatchErr
		}
	}
	if err != nil {
		t.rootOK = false
		if !t.rootWarned {
			t.log.Warn("fs: cannot watch the directory; looking for it again every second", "path", t.root, "err", err)
			t.rootWarned = true
		}
		return
	}
	if t.rootWarned {
		t.log.Info("fs: the directory is back; watching it", "path", t.root)
		t.rootWarned = false
	}
	t.rootOK = true
}

type notDir struct{}

func (notDir) Error() string { return "not a directory" }

var errNotDir error = notDir{}

// watch adds a watch on the directory rel unless it has one. It reports whether the
// directory is watched.
func (t *Trigger) watch(rel string) bool {
	if t.dirs[rel] {
		return true
	}
	if t.w == nil {
		t.dirs[rel] = true
		return true
	}
	if err := t.w.Add(t.abs(rel)); err != nil {
		if t.watchErrs == 0 {
			t.firstWatchErr = err
		}
		t.watchErrs++
		return false
	}
	t.dirs[rel] = true
	return true
}

func (t *Trigger) unwatch(rel string) {
	if t.w != nil {
		_ = t.w.Remove(t.abs(rel))
	}
}

// reportWatchErrors logs the directories that could not be watched since the last call.
func (t *Trigger) reportWatchErrors() {
	if t.watchErrs == 0 {
		return
	}
	t.log.Warn("fs: some directories cannot be watched; changes there are found by the rescan only (see fs.inotify.max_user_watches)",
		"path", t.root, "count", t.watchErrs, "err", t.firstWatchErr)
	t.watchErrs, t.firstWatchErr = 0, nil
}

// handle takes one notification: it checks the path, watches new directories and
// marks the file pending.
func (t *Trigger) handle(ev fsnotify.Event, at time.Time) {
	rel, ok := t.relOf(ev.Name)
	if !ok {
		t.log.Debug("fs: notification outside the watched directory dropped", "path", ev.Name)
		return
	}
	if rel == "." {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			t.rootGone()
		}
		return
	}
	if !t.recursive && strings.Contains(rel, "/") {
		return
	}
	fi, err := os.Lstat(t.abs(rel))
	if err == nil && fi.IsDir() {
		if t.recursive && (ev.Has(fsnotify.Create) || !t.dirs[rel]) {
			// A directory that is created or moved in: watch it, then look at what
			// was written into it before the watch existed.
			delete(t.dirs, rel)
			t.walk(rel, t.found)
			t.reportWatchErrors()
		}
		// A file that was replaced by a directory is gone.
		if _, ok := t.known[rel]; ok || t.pending[rel] != nil {
			t.touch(rel, false, at)
		}
		return
	}
	if t.dirs[rel] {
		t.dirGone(rel)
	}
	if !t.inScope(rel) {
		return
	}
	// Chmod is often noise, but it is also how a new mtime alone shows: the file is
	// looked at, and only a changed size or mtime counts.
	t.touch(rel, ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write), at)
}

// dirGone forgets the watched directory rel and those below it, and looks again at
// every file known there.
func (t *Trigger) dirGone(rel string) {
	for d := range t.dirs {
		if under(d, rel) {
			delete(t.dirs, d)
			t.unwatch(d)
		}
	}
	for f, v := range t.known {
		if v != deletedVersion && under(f, rel) && t.pending[f] == nil {
			t.touch(f, false, time.Now())
		}
	}
	for f := range t.pending {
		if under(f, rel) {
			t.touch(f, false, time.Now())
		}
	}
}

// rootGone handles the removal or renaming of the root: the trigger waits for it to
// come back. Files are not reported deleted while the root is missing; the first
// rescan after it is back compares what is there with what was.
func (t *Trigger) rootGone() {
	for d := range t.dirs {
		t.unwatch(d)
	}
	clear(t.dirs)
	t.rootOK = false
	t.log.Warn("fs: the watched directory was removed or renamed; waiting for it", "path", t.root)
	t.rootWarned = true
	t.scheduleRescan()
}

// walk visits the tree at dir (a relative path), watching each directory before
// reading it when recursive, and calls found for each file in scope. It returns the
// directories that could not be read completely, and whether dir itself was walked.
func (t *Trigger) walk(dir string, found func(rel string, o obs)) (failed []string, ok bool) {
	start := t.abs(dir)
	ok = true
	_ = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		rel, in := t.relOf(p)
		if !in {
			return filepath.SkipDir
		}
		if err != nil {
			if p == start && d == nil {
				ok = false
				return err
			}
			failed = append(failed, rel)
			t.log.Debug("fs: cannot read", "path", p, "err", err)
			return nil
		}
		if d.IsDir() {
			if p == start {
				// WalkDir follows a symbolic link at its start: make sure it is
				// still a directory of its own.
				if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
					ok = false
					return filepath.SkipDir
				}
			}
			if rel != "." && !t.recursive {
				return filepath.SkipDir
			}
			t.watch(rel)
			return nil
		}
		if !t.inScope(rel) {
			return nil
		}
		typ := d.Type()
		if !typ.IsRegular() && typ&fs.ModeSymlink == 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !gone(err) {
				failed = append(failed, rel)
			}
			return nil
		}
		if o := t.observeInfo(p, fi); o.kind == file {
			found(rel, o)
		}
		return nil
	})
	return failed, ok
}

// found takes a file that a walk of a new directory came across.
func (t *Trigger) found(rel string, o obs) {
	if e := t.pending[rel]; e != nil {
		if e.seen != o {
			e.seen = o
			if due := time.Now().Add(t.settle); due.After(e.due) {
				e.due = due
			}
		}
		return
	}
	t.addPending(rel, o, time.Now())
}

// baseline records the files present at an existing: false start as accounted for,
// and the receipts of files that vanished before it as gone.
func (t *Trigger) baseline(ctx context.Context) {
	t.walk(".", func(rel string, o obs) { t.known[rel] = o.version() })
	t.reportWatchErrors()
	t.markVanished(ctx)
}

// markVanished reads the receipts whose files are not there and marks them gone, so
// that what disappeared before an existing: false start is not reported.
func (t *Trigger) markVanished(ctx context.Context) {
	err := t.eachReceiptKey(ctx, func(keys []string) error {
		for _, k := range keys {
			rel, ok := t.relOfKey(k)
			if !ok {
				continue
			}
			if _, known := t.known[rel]; !known && t.pending[rel] == nil {
				t.known[rel] = deletedVersion
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("fs: cannot read receipts; will try again at the next rescan", "path", t.root, "err", err)
		}
		return
	}
	t.receiptsBaseline = true
}

// relOfKey turns one of this trigger's receipt keys into a relative path in scope.
func (t *Trigger) relOfKey(k string) (string, bool) {
	rel, ok := strings.CutPrefix(k, t.keyPrefix)
	if !ok || rel == "" || strings.HasPrefix(rel, "/") || !filepath.IsLocal(filepath.FromSlash(rel)) ||
		filepath.ToSlash(filepath.Clean(filepath.FromSlash(rel))) != rel || !t.inScope(rel) {
		return "", false
	}
	return rel, true
}

// eachReceiptKey pages through the receipt keys of the function under the trigger's
// key prefix.
func (t *Trigger) eachReceiptKey(ctx context.Context, fn func(keys []string) error) error {
	after := ""
	for {
		keys, err := t.st.ReceiptKeys(ctx, t.fn, t.keyPrefix, after, lookupBatch)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		if err := fn(keys); err != nil {
			return err
		}
		if len(keys) < lookupBatch {
			return nil
		}
		after = keys[len(keys)-1]
	}
}

// rescan walks the tree and makes pending every file whose version is not accounted
// for, and every file accounted for that is gone.
func (t *Trigger) rescan(ctx context.Context) {
	defer t.scheduleRescan()
	if !t.rootOK {
		t.setupRoot()
		if !t.rootOK {
			return
		}
	}
	// Directories that went away without a notification (overflow) lose their watch
	// first, so that one moved elsewhere in the tree is watched under its new name.
	for d := range t.dirs {
		if fi, err := os.Lstat(t.abs(d)); err != nil || !fi.IsDir() {
			if d == "." {
				t.rootGone()
				return
			}
			t.dirGone(d)
		}
	}

	seen := map[string]bool{}
	var batch []found
	lookup := func() {
		if len(batch) > 0 {
			t.lookupFound(ctx, batch)
			batch = batch[:0]
		}
	}
	failed, ok := t.walk(".", func(rel string, o obs) {
		seen[rel] = true
		if t.pending[rel] != nil || t.known[rel] == o.version() {
			return
		}
		batch = append(batch, found{rel, o})
		if len(batch) >= lookupBatch {
			lookup()
		}
	})
	lookup()
	t.reportWatchErrors()
	if !ok {
		t.rootGone()
		return
	}
	missing := func(rel string) bool {
		if seen[rel] || t.pending[rel] != nil {
			return false
		}
		for _, d := range failed {
			if under(rel, d) {
				return false
			}
		}
		return true
	}
	for rel, v := range t.known {
		if v != deletedVersion && missing(rel) {
			t.addPending(rel, obs{}, time.Now())
		}
	}
	if !t.receiptsBaseline {
		t.markVanished(ctx)
		return
	}
	// Receipts of files that are gone and that this process never saw: deleted while
	// it was down, or by another host's watch.
	var stale []string
	check := func() error {
		if len(stale) == 0 {
			return nil
		}
		versions, err := t.st.Receipts(ctx, t.fn, stale)
		if err != nil {
			return err
		}
		for _, k := range stale {
			rel, _ := t.relOfKey(k)
			v, ok := versions[k]
			switch {
			case !ok:
			case v == deletedVersion:
				t.known[rel] = deletedVersion
			default:
				if _, isFile := parseVersion(v); isFile {
					t.addPending(rel, obs{}, time.Now())
				}
			}
		}
		stale = stale[:0]
		return nil
	}
	err := t.eachReceiptKey(ctx, func(keys []string) error {
		for _, k := range keys {
			rel, ok := t.relOfKey(k)
			if !ok {
				continue
			}
			if _, known := t.known[rel]; known || !missing(rel) {
				continue
			}
			stale = append(stale, k)
		}
		return check()
	})
	if err != nil && ctx.Err() == nil {
		t.log.Warn("fs: cannot read receipts during the rescan", "path", t.root, "err", err)
	}
}

// found is a file a rescan came across.
type found struct {
	rel string
	o   obs
}

// lookupFound compares files found by a rescan with their receipts: a file whose
// receipt holds its version is accounted for without a write; the others settle and
// are submitted.
func (t *Trigger) lookupFound(ctx context.Context, batch []found) {
	keys := make([]string, len(batch))
	for i, f := range batch {
		keys[i] = t.key(f.rel)
	}
	versions, err := t.st.Receipts(ctx, t.fn, keys)
	if err != nil && ctx.Err() == nil {
		t.log.Warn("fs: cannot read receipts during the rescan", "path", t.root, "err", err)
	}
	for i, f := range batch {
		if err == nil && versions[keys[i]] == f.o.version() {
			t.known[f.rel] = f.o.version()
			continue
		}
		t.addPending(f.rel, f.o, time.Now())
	}
}
