package fs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
	fstrigger "github.com/fnhost/fnhost/triggers/fs"
)

// data is the data of an fs event as a handler reads it.
type data struct {
	Path    string `json:"path"`
	AbsPath string `json:"abs_path"`
	Size    int64  `json:"size"`
	MTime   string `json:"mtime"`
	Op      string `json:"op"`
}

// call is one run of the handler.
type call struct {
	ev   fnhost.Event
	data data
	// disk is the file's size when the handler started (-1: missing).
	disk int64
}

// bundle is a watched directory, a runtime on a real SQLite store with one function
// (b.fn) that records its calls, and the triggers started on it.
type bundle struct {
	t    *testing.T
	fn   string
	dir  string
	st   store.Store
	rt   *runtime.Runtime
	reg  *prometheus.Registry
	sub  triggers.Submitter
	mu   sync.Mutex
	got  []call
	logs *testlog.Buffer
}

var bundles atomic.Int64

func setup(t *testing.T) *bundle {
	t.Helper()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "inbox")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := runtimetest.OpenStore(t, sqlite.Options{})
	// Every bundle has its own function name: the events counter is per process.
	b := &bundle{t: t, fn: fmt.Sprintf("watch%d", bundles.Add(1)), dir: dir, st: st, reg: prometheus.NewRegistry(), logs: &testlog.Buffer{}}
	handler := fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		c := call{ev: ev, disk: -1}
		if err := json.Unmarshal(ev.Data, &c.data); err != nil {
			return fnhost.Result{}, fnhost.Permanent(err)
		}
		if fi, err := os.Stat(c.data.AbsPath); err == nil {
			c.disk = fi.Size()
		}
		b.mu.Lock()
		b.got = append(b.got, c)
		b.mu.Unlock()
		return fnhost.Result{}, nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trigger log:\n%s", b.logs.String())
		}
	})
	rt := runtimetest.Start(t, runtime.Config{
		Store: st, Workers: 8,
		Functions: []*runtime.Function{{Name: b.fn, Handler: handler, Timeout: 10 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 1, Backoff: "fixed", InitialInterval: 10 * time.Millisecond}}},
	})
	b.rt, b.sub = rt, rt
	return b
}

// start builds an fs trigger of b.fn on the bundle's directory (unless cfg names
// another), runs it, waits until it is watching, and returns a function that stops it
// and waits for Run to return.
func (b *bundle) start(cfg manifest.FSTrigger) func() {
	b.t.Helper()
	return b.startAmong(cfg, nil)
}

// startAmong is start for a function that has the other fs triggers too.
func (b *bundle) startAmong(cfg manifest.FSTrigger, others []manifest.Trigger) func() {
	b.t.Helper()
	if cfg.Path == "" {
		cfg.Path = b.dir
	}
	if cfg.Settle == 0 {
		cfg.Settle = 100 * time.Millisecond
	}
	if cfg.Rescan == 0 {
		cfg.Rescan = time.Hour
	}
	tr := manifest.Trigger{Kind: "fs", FS: &cfg}
	trig, err := triggers.New(triggers.Env{
		Function:   &manifest.Function{Name: b.fn, Triggers: append([]manifest.Trigger{tr}, others...)},
		Trigger:    tr,
		Submitter:  b.sub,
		Store:      b.st,
		Logger:     slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: b.reg,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- trig.Run(ctx) }()
	select {
	case <-fstrigger.Ready(trig):
	case err := <-done:
		b.t.Fatalf("Run returned at start: %v", err)
	case <-time.After(10 * time.Second):
		b.t.Fatal("the trigger did not become ready")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			b.t.Error("Run did not return within 10s of its context's end")
		}
	}
	b.t.Cleanup(stop)
	return stop
}

func (b *bundle) calls() []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// paths lists "op path" of every call so far, sorted.
func (b *bundle) paths() []string {
	var out []string
	for _, c := range b.calls() {
		out = append(out, c.data.Op+" "+c.data.Path)
	}
	sort.Strings(out)
	return out
}

// waitFor polls until cond holds.
func (b *bundle) waitFor(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("gave up waiting for %s; calls: %q", what, b.paths())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sync writes a new sentinel file and waits until it has been handled: whatever the
// trigger was going to submit before it has been submitted (and, with one worker per
// file in this runtime, handled) by then.
func (b *bundle) sync(dir string) {
	b.t.Helper()
	name := fmt.Sprintf("zz-sentinel-%d.txt", time.Now().UnixNano())
	write(b.t, filepath.Join(dir, name), "sentinel")
	rel, _ := filepath.Rel(b.dir, filepath.Join(dir, name))
	rel = filepath.ToSlash(rel)
	b.waitFor("sentinel "+rel, func() bool { return b.count(rel) > 0 })
	// The handlers of earlier submissions may still be running.
	time.Sleep(100 * time.Millisecond)
}

// count is the number of calls for rel.
func (b *bundle) count(rel string) int {
	n := 0
	for _, c := range b.calls() {
		if c.data.Path == rel {
			n++
		}
	}
	return n
}

// stored is the number of invocations of b.fn in the store.
func (b *bundle) stored() int {
	b.t.Helper()
	page, err := b.st.List(context.Background(), store.Filter{Function: b.fn, Limit: 10000})
	if err != nil {
		b.t.Fatal(err)
	}
	return len(page.Items)
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSettleSlowWriter writes a file in five chunks 100ms apart with settle 300ms: it
// must be submitted once, with its final size, and be complete when the handler runs.
func TestSettleSlowWriter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Pattern: "*", Settle: 300 * time.Millisecond})

	chunk := strings.Repeat("x", 1000)
	f, err := os.Create(filepath.Join(b.dir, "slow.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := f.WriteString(chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := b.count("slow.bin"); n > 0 {
			t.Fatalf("submitted while still being written (%d calls)", n)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b.waitFor("slow.bin", func() bool { return b.count("slow.bin") > 0 })
	b.sync(b.dir)
	if n := b.count("slow.bin"); n != 1 {
		t.Fatalf("slow.bin handled %d times, want once", n)
	}
	for _, c := range b.calls() {
		if c.data.Path != "slow.bin" {
			continue
		}
		if c.data.Size != 5000 || c.disk != 5000 {
			t.Fatalf("slow.bin: event size %d, size on disk at handler start %d, want 5000", c.data.Size, c.disk)
		}
		if c.data.Op != "created" {
			t.Fatalf("op %q, want created", c.data.Op)
		}
	}
}

// TestEventShape checks the CloudEvent and its data.
func TestEventShape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{})
	p := filepath.Join(b.dir, "a.txt")
	write(t, p, "hello")
	b.waitFor("a.txt", func() bool { return b.count("a.txt") == 1 })
	c := b.calls()[0]
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.ev.Source != "fnhost/fs/"+b.fn || c.ev.Type != "fnhost.fs.created" || c.ev.Subject != "a.txt" || c.ev.SpecVersion != "1.0" {
		t.Fatalf("event = %+v", c.ev)
	}
	mt, err := time.Parse(time.RFC3339Nano, c.data.MTime)
	if err != nil {
		t.Fatal(err)
	}
	if c.data.AbsPath != p || c.data.Size != 5 || !mt.Equal(fi.ModTime()) || c.data.Op != "created" {
		t.Fatalf("data = %+v, want abs_path %s, size 5, mtime %s", c.data, p, fi.ModTime())
	}
	inv, err := b.st.List(context.Background(), store.Filter{Function: b.fn})
	if err != nil || len(inv.Items) != 1 || inv.Items[0].Trigger != "fs" {
		t.Fatalf("stored invocations = %+v, %v; want one with trigger fs", inv.Items, err)
	}
	versions, err := b.st.Receipts(context.Background(), b.fn, []string{"a.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano()); versions["a.txt"] != want {
		t.Fatalf("receipt = %q, want %q", versions["a.txt"], want)
	}
	if v := counterOf(t, b.reg, b.fn, "created"); v != 1 {
		t.Fatalf("fnhost_fs_events_total{op=created} = %v, want 1", v)
	}
}

// counterOf reads fnhost_fs_events_total{function=fn,op=op} from reg.
func counterOf(t *testing.T, reg *prometheus.Registry, fn, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fnhost_fs_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["function"] == fn && labels["op"] == op {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestNewSubdirectory creates directories after the start, some with files written
// at once (before the watch on them can exist).
func TestNewSubdirectory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Recursive: true})
	write(t, filepath.Join(b.dir, "a", "b", "c", "deep.txt"), "deep")
	if err := os.MkdirAll(filepath.Join(b.dir, "later"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	write(t, filepath.Join(b.dir, "later", "x.txt"), "x")
	b.waitFor("both files", func() bool { return b.count("a/b/c/deep.txt") == 1 && b.count("later/x.txt") == 1 })
	b.sync(filepath.Join(b.dir, "a", "b"))
	if n, m := b.count("a/b/c/deep.txt"), b.count("later/x.txt"); n != 1 || m != 1 {
		t.Fatalf("handled %d and %d times, want once each", n, m)
	}

	// A directory moved in from outside brings its files along.
	outside := filepath.Join(t.TempDir(), "moved")
	write(t, filepath.Join(outside, "sub", "m.txt"), "moved")
	if err := os.Rename(outside, filepath.Join(b.dir, "moved")); err != nil {
		t.Fatal(err)
	}
	b.waitFor("moved/sub/m.txt", func() bool { return b.count("moved/sub/m.txt") == 1 })
}

// TestNotRecursive leaves subdirectories alone.
func TestNotRecursive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Rescan: 50 * time.Millisecond})
	write(t, filepath.Join(b.dir, "sub", "x.txt"), "x")
	write(t, filepath.Join(b.dir, "top.txt"), "top")
	b.waitFor("top.txt", func() bool { return b.count("top.txt") == 1 })
	time.Sleep(200 * time.Millisecond) // several rescans
	b.sync(b.dir)
	if n := b.count("sub/x.txt"); n != 0 {
		t.Fatalf("sub/x.txt handled %d times without recursive", n)
	}
}

// TestPattern submits only the names the pattern matches; a leading dot must be
// matched explicitly.
func TestPattern(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Pattern: "*.csv", Recursive: true})
	for _, name := range []string{"a.csv", "b.txt", ".hidden.csv", "sub/c.csv", "sub/d.csv.tmp", "e.CSV"} {
		write(t, filepath.Join(b.dir, name), "1,2,3")
	}
	b.waitFor("a.csv and sub/c.csv", func() bool { return b.count("a.csv") == 1 && b.count("sub/c.csv") == 1 })
	// The sentinel (.txt) does not match; use a matching one.
	write(t, filepath.Join(b.dir, "zz.csv"), "z")
	b.waitFor("zz.csv", func() bool { return b.count("zz.csv") == 1 })
	time.Sleep(100 * time.Millisecond)
	if got, want := b.paths(), []string{"created a.csv", "created sub/c.csv", "created zz.csv"}; !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}

	b2 := setup(t)
	b2.start(manifest.FSTrigger{Pattern: ".*"})
	write(t, filepath.Join(b2.dir, ".dot"), "x")
	b2.waitFor(".dot", func() bool { return b2.count(".dot") == 1 })
}

// TestModifiedDeleted follows one file through its life.
func TestModifiedDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Events: []string{"created", "modified", "deleted"}})
	p := filepath.Join(b.dir, "f.txt")
	write(t, p, "one")
	b.waitFor("created", func() bool { return len(b.calls()) == 1 })

	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" two")
	f.Close()
	b.waitFor("modified", func() bool { return len(b.calls()) == 2 })

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	b.waitFor("deleted", func() bool { return len(b.calls()) == 3 })

	write(t, p, "again")
	b.waitFor("created again", func() bool { return len(b.calls()) == 4 })
	b.sync(b.dir)

	var ops []string
	var sizes []int64
	for _, c := range b.calls() {
		if c.data.Path == "f.txt" {
			ops = append(ops, c.data.Op)
			sizes = append(sizes, c.data.Size)
		}
	}
	if want := []string{"created", "modified", "deleted", "created"}; !slices.Equal(ops, want) {
		t.Fatalf("ops %q, want %q", ops, want)
	}
	// The deletion carries the last version seen.
	if want := []int64{3, 7, 7, 5}; !slices.Equal(sizes, want) {
		t.Fatalf("sizes %v, want %v", sizes, want)
	}
	for _, c := range b.calls() {
		if c.data.Op == "deleted" && (c.ev.Type != "fnhost.fs.deleted" || c.data.MTime == "") {
			t.Fatalf("deleted event %+v", c)
		}
	}
	if v := counterOf(t, b.reg, b.fn, "deleted"); v != 1 {
		t.Fatalf("fnhost_fs_events_total{op=deleted} = %v, want 1", v)
	}
}

// TestEventsFilter: with only created, a change is not submitted, and a file that is
// deleted and comes back is created again.
func TestEventsFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Events: []string{"created"}})
	p := filepath.Join(b.dir, "f.txt")
	write(t, p, "one")
	b.waitFor("created", func() bool { return b.count("f.txt") == 1 })
	write(t, p, "changed")
	b.sync(b.dir)
	if n := b.count("f.txt"); n != 1 {
		t.Fatalf("a modification was submitted without modified in events (%d calls)", n)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	b.sync(b.dir)
	write(t, p, "back")
	b.waitFor("created again", func() bool { return b.count("f.txt") == 2 })
	for _, c := range b.calls() {
		if c.data.Op != "created" {
			t.Fatalf("op %q with events [created]", c.data.Op)
		}
	}
}

// TestExisting: files present at start are submitted with existing: true only.
func TestExisting(t *testing.T) {
	t.Parallel()
	for _, existing := range []bool{true, false} {
		t.Run(fmt.Sprint(existing), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			write(t, filepath.Join(b.dir, "old1.txt"), "1")
			write(t, filepath.Join(b.dir, "sub", "old2.txt"), "2")
			b.start(manifest.FSTrigger{Recursive: true, Existing: existing})
			write(t, filepath.Join(b.dir, "new.txt"), "n")
			b.waitFor("new.txt", func() bool { return b.count("new.txt") == 1 })
			b.sync(b.dir)
			n1, n2 := b.count("old1.txt"), b.count("sub/old2.txt")
			if existing && (n1 != 1 || n2 != 1) {
				t.Fatalf("existing: true handled the old files %d and %d times, want once", n1, n2)
			}
			if !existing && (n1 != 0 || n2 != 0) {
				t.Fatalf("existing: false handled the old files %d and %d times, want never", n1, n2)
			}
			// A change after the start counts, existing or not.
			write(t, filepath.Join(b.dir, "old1.txt"), "changed")
			if !existing {
				b.sync(b.dir)
				if n := b.count("old1.txt"); n != 0 {
					t.Fatalf("a modification was submitted with events [created] (%d)", n)
				}
			}
		})
	}
}

// TestRestart stops the trigger and starts a new one on the same store: nothing is
// submitted again, while what changed in between is.
func TestRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := manifest.FSTrigger{Recursive: true, Existing: true, Events: []string{"created", "modified", "deleted"}}
	stop := b.start(cfg)
	for _, name := range []string{"a.txt", "b.txt", "sub/c.txt", "gone.txt"} {
		write(t, filepath.Join(b.dir, name), name)
	}
	b.waitFor("the first files", func() bool { return len(b.calls()) == 4 })
	stop()

	// While stopped: one added, one changed, one deleted.
	write(t, filepath.Join(b.dir, "sub", "while-down.txt"), "late")
	write(t, filepath.Join(b.dir, "b.txt"), "b changed")
	if err := os.Remove(filepath.Join(b.dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}

	b.start(cfg)
	b.waitFor("the changes made while stopped", func() bool {
		return b.count("sub/while-down.txt") == 1 && b.count("b.txt") == 2 && b.count("gone.txt") == 2
	})
	b.sync(b.dir)
	want := []string{"created a.txt", "created b.txt", "created gone.txt", "created sub/c.txt", "created sub/while-down.txt",
		"deleted gone.txt", "modified b.txt"}
	got := slices.DeleteFunc(b.paths(), func(s string) bool { return strings.Contains(s, "zz-sentinel") })
	if !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}

	// A third start with nothing changed submits nothing.
	before := b.stored()
	b.start(cfg)
	b.sync(b.dir)
	if after := b.stored(); after != before+1 {
		t.Fatalf("%d invocations stored after a restart with only a sentinel added, want %d", after, before+1)
	}
}

// TestSymlinks follows a symbolic link only to a file inside the root.
func TestSymlinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret.txt"), "secret")
	write(t, filepath.Join(outside, "dir", "inner.txt"), "inner")
	write(t, filepath.Join(b.dir, "real.txt"), "real")
	b.start(manifest.FSTrigger{Recursive: true, Existing: true, Rescan: 50 * time.Millisecond})
	b.waitFor("real.txt", func() bool { return b.count("real.txt") == 1 })

	links := map[string]string{
		"to-secret.txt": filepath.Join(outside, "secret.txt"),
		"to-dir":        filepath.Join(outside, "dir"),
		"dotdot.txt":    "../../" + filepath.Base(outside) + "/secret.txt",
		"to-real.txt":   "real.txt",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(b.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	b.waitFor("to-real.txt", func() bool { return b.count("to-real.txt") == 1 })
	time.Sleep(200 * time.Millisecond) // a few rescans
	b.sync(b.dir)
	for _, c := range b.calls() {
		if strings.Contains(c.data.Path, "secret") || strings.HasPrefix(c.data.Path, "to-dir") || c.data.Path == "dotdot.txt" {
			t.Fatalf("a file outside the root was submitted: %+v", c.data)
		}
		if !strings.HasPrefix(c.data.AbsPath, b.dir+"/") {
			t.Fatalf("abs_path %q is not under %s", c.data.AbsPath, b.dir)
		}
	}
}

// TestOddNames checks that names round-trip exactly.
func TestOddNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Recursive: true})
	names := []string{"with space.txt", "ünïcödé 日本語.txt", "-leading-dash", "new\nline", `quote"back\slash`, "tab\there", "emoji 🎉", "dir with space/é.txt"}
	for _, n := range names {
		write(t, filepath.Join(b.dir, n), n)
	}
	b.waitFor("every name", func() bool {
		for _, n := range names {
			if b.count(n) != 1 {
				return false
			}
		}
		return true
	})
	for _, c := range b.calls() {
		if c.ev.Subject != c.data.Path || c.data.AbsPath != filepath.Join(b.dir, c.data.Path) || c.disk != int64(len(c.data.Path)) {
			t.Fatalf("%q: subject %q, abs_path %q, size on disk %d", c.data.Path, c.ev.Subject, c.data.AbsPath, c.disk)
		}
	}
}

// flaky fails the first n submissions.
type flaky struct {
	triggers.Submitter
	fail  atomic.Int32
	tries atomic.Int32
}

func (f *flaky) Submit(ctx context.Context, subs ...fnhost.Submission) ([]store.EnqueueResult, error) {
	f.tries.Add(1)
	if f.fail.Add(-1) >= 0 {
		return nil, errors.New("store down")
	}
	return f.Submitter.Submit(ctx, subs...)
}

// TestSubmitFailureRetried: a file whose submission failed stays pending and is
// submitted once the store answers again.
func TestSubmitFailureRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := &flaky{Submitter: b.rt}
	f.fail.Store(2)
	b.sub = f
	b.start(manifest.FSTrigger{})
	write(t, filepath.Join(b.dir, "x.txt"), "x")
	b.waitFor("x.txt after two failures", func() bool { return b.count("x.txt") == 1 })
	if n := f.tries.Load(); n < 3 {
		t.Fatalf("%d submissions, want at least 3", n)
	}
	b.sync(b.dir)
	if n := b.count("x.txt"); n != 1 {
		t.Fatalf("x.txt handled %d times", n)
	}
}

// TestRescanCatchesMissed changes a file through a hard link outside the watched
// directory, which no notification reports: the rescan finds it.
func TestRescanCatchesMissed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Events: []string{"created", "modified"}, Rescan: 200 * time.Millisecond})
	p := filepath.Join(b.dir, "linked.txt")
	write(t, p, "one")
	b.waitFor("created", func() bool { return b.count("linked.txt") == 1 })
	other := filepath.Join(t.TempDir(), "other-name")
	if err := os.Link(p, other); err != nil {
		t.Skip("hard links not supported here:", err)
	}
	f, err := os.OpenFile(other, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" and more")
	f.Close()
	b.waitFor("modified through the rescan", func() bool { return b.count("linked.txt") == 2 })
	c := b.calls()[1]
	if c.data.Op != "modified" || c.data.Size != 12 {
		t.Fatalf("second call %+v, want modified with size 12", c.data)
	}
}

// TestMissingRoot waits for the directory to appear.
func TestMissingRoot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	root := filepath.Join(t.TempDir(), "later")
	b.dir = root
	b.start(manifest.FSTrigger{Path: root})
	write(t, filepath.Join(root, "first.txt"), "1")
	b.waitFor("first.txt once the directory exists", func() bool { return b.count("first.txt") == 1 })
	write(t, filepath.Join(root, "second.txt"), "2")
	b.waitFor("second.txt", func() bool { return b.count("second.txt") == 1 })
}

// TestFactoryErrors checks what the factory refuses.
func TestFactoryErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, cfg := range []manifest.FSTrigger{
		{Path: "relative"},
		{Path: b.dir, Pattern: "[", Settle: time.Second},
		{Path: b.dir, Events: []string{"renamed"}},
	} {
		tr := manifest.Trigger{Kind: "fs", FS: &cfg}
		_, err := triggers.New(triggers.Env{Function: &manifest.Function{Name: b.fn}, Trigger: tr, Submitter: b.rt, Store: b.st})
		if err == nil || !strings.Contains(err.Error(), `"`+b.fn+`"`) {
			t.Errorf("%+v: err = %v, want an error naming the function", cfg, err)
		}
	}
}

// TestDirectoryRename moves a directory within the tree: its files are deleted under
// the old name and created under the new one, and the directories below it are
// watched under their new names.
func TestDirectoryRename(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Recursive: true, Events: []string{"created", "deleted"}})
	write(t, filepath.Join(b.dir, "a", "sub", "x.txt"), "x")
	b.waitFor("a/sub/x.txt", func() bool { return b.count("a/sub/x.txt") == 1 })
	if err := os.Rename(filepath.Join(b.dir, "a"), filepath.Join(b.dir, "b")); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the move", func() bool { return b.count("a/sub/x.txt") == 2 && b.count("b/sub/x.txt") == 1 })
	write(t, filepath.Join(b.dir, "b", "sub", "y.txt"), "y")
	b.waitFor("b/sub/y.txt", func() bool { return b.count("b/sub/y.txt") == 1 })
	b.sync(filepath.Join(b.dir, "b", "sub"))
	want := []string{"created a/sub/x.txt", "created b/sub/x.txt", "created b/sub/y.txt", "deleted a/sub/x.txt"}
	got := slices.DeleteFunc(b.paths(), func(s string) bool { return strings.Contains(s, "zz-sentinel") })
	if !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
}

// TestAtomicReplace writes a hidden temporary file and renames it over the watched
// one, as editors and careful writers do: one modification, nothing for the
// temporary name.
func TestAtomicReplace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(manifest.FSTrigger{Events: []string{"created", "modified", "deleted"}})
	p := filepath.Join(b.dir, "config.json")
	write(t, p, `{"v": 1}`)
	b.waitFor("created", func() bool { return b.count("config.json") == 1 })
	tmp := filepath.Join(b.dir, ".config.json.tmp")
	write(t, tmp, `{"v": 2, "more": true}`)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	b.waitFor("modified", func() bool { return b.count("config.json") == 2 })
	b.sync(b.dir)
	want := []string{"created config.json", "modified config.json"}
	got := slices.DeleteFunc(b.paths(), func(s string) bool { return strings.Contains(s, "zz-sentinel") })
	if !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
}

// TestTwoDirectories gives one function two fs triggers: the same relative name in
// both is two files, and neither trigger takes the other's files for deleted ones.
func TestTwoDirectories(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	first := manifest.FSTrigger{Path: b.dir, Existing: true, Events: []string{"created", "deleted"}, Rescan: 50 * time.Millisecond}
	second := manifest.FSTrigger{Path: other, Existing: true, Events: []string{"created", "deleted"}, Rescan: 50 * time.Millisecond}
	b.startAmong(first, []manifest.Trigger{{Kind: "fs", FS: &second}})
	b.startAmong(second, []manifest.Trigger{{Kind: "fs", FS: &first}})
	write(t, filepath.Join(b.dir, "same.txt"), "one")
	write(t, filepath.Join(b.dir, "only-here.txt"), "only")
	b.waitFor("the first directory's files", func() bool { return b.count("same.txt") == 1 && b.count("only-here.txt") == 1 })
	write(t, filepath.Join(other, "same.txt"), "other")
	b.waitFor("both files", func() bool { return b.count("same.txt") == 2 })
	time.Sleep(300 * time.Millisecond) // several rescans of each
	b.sync(b.dir)
	if n := b.count("only-here.txt"); n != 1 {
		t.Fatalf("only-here.txt handled %d times, want once: %q", n, b.paths())
	}
	abs := map[string]bool{}
	for _, c := range b.calls() {
		if c.data.Path == "same.txt" {
			if c.data.Op != "created" {
				t.Fatalf("unexpected %s of %s", c.data.Op, c.data.AbsPath)
			}
			abs[c.data.AbsPath] = true
		}
	}
	if len(abs) != 2 || b.count("same.txt") != 2 {
		t.Fatalf("same.txt handled for %v (%d calls), want once in each directory", abs, b.count("same.txt"))
	}
}
