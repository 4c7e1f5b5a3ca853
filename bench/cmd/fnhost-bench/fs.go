package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
)

const (
	fsFiles  = 1000
	fsSettle = 50 * time.Millisecond
	// fsPace spaces the files of the paced run: a steady stream, not a burst.
	fsPace = 2 * time.Millisecond
)

// benchFS measures the fs trigger: the time from a file's close to the start of its
// handler, for 1 000 files written into a watched directory with settle 50 ms, once at
// a steady pace and once in a burst. The baseline is a bare fsnotify watcher with a
// settle timer per file, which is the least any settling watcher can take.
func benchFS(dir string) {
	var rowsOut []row
	for _, run := range []struct {
		name string
		pace time.Duration
	}{{"paced, one file every 2 ms", fsPace}, {"burst", 0}} {
		slug := strings.Fields(run.name)[0]
		bareP50, bareP99 := bareSettle(filepath.Join(dir, "bare-"+slug), run.pace)
		p50, p99 := fsLatency(filepath.Join(dir, "fnhost-"+slug), run.pace)
		target := ""
		if run.pace > 0 {
			target = fmt.Sprintf("p50 ≤ settle + 20 ms (%s)", ms(fsSettle+20*time.Millisecond))
		}
		rowsOut = append(rowsOut, row{
			fmt.Sprintf("fs trigger: file closed → handler start, %d files, settle %s, %s", fsFiles, fsSettle, run.name),
			fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(p99)),
			fmt.Sprintf("p50 %s, p99 %s bare fsnotify + timer", ms(bareP50), ms(bareP99)),
			fmt.Sprintf("+%s p50", ms(p50-bareP50)),
			target,
		})
	}
	for _, r := range rowsOut {
		add(r)
	}
}

// writeFiles writes fsFiles files into dir, pace apart, and returns when each was
// closed, by name.
func writeFiles(dir string, pace time.Duration) map[string]time.Time {
	closed := make(map[string]time.Time, fsFiles)
	body := []byte(strings.Repeat("x", 1024))
	next := time.Now()
	for i := range fsFiles {
		name := fmt.Sprintf("file-%04d.dat", i)
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			fatal(err)
		}
		closed[name] = time.Now()
		if pace > 0 {
			next = next.Add(pace)
			time.Sleep(time.Until(next))
		}
	}
	return closed
}

// latencies turns close and start times into sorted latencies and returns p50, p99.
func latencies(closed, started map[string]time.Time) (time.Duration, time.Duration) {
	var lat []time.Duration
	for name, c := range closed {
		if s, ok := started[name]; ok {
			lat = append(lat, s.Sub(c))
		}
	}
	if len(lat) < len(closed) {
		fmt.Fprintf(os.Stderr, "  warning: %d of %d files never reached a handler\n", len(closed)-len(lat), len(closed))
	}
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// startTimes collects the first start time of each file until all have started.
type startTimes struct {
	mu   sync.Mutex
	at   map[string]time.Time
	all  chan struct{}
	once sync.Once
}

func newStartTimes() *startTimes {
	return &startTimes{at: map[string]time.Time{}, all: make(chan struct{})}
}

func (s *startTimes) record(name string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[name]; !ok {
		s.at[name] = t
	}
	if len(s.at) == fsFiles {
		s.once.Do(func() { close(s.all) })
	}
}

func (s *startTimes) wait(d time.Duration) map[string]time.Time {
	select {
	case <-s.all:
	case <-time.After(d):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.at)
}

// bareSettle is the baseline: fsnotify on the directory and a timer per file that
// fires settle after the file's last notification.
func bareSettle(dir string, pace time.Duration) (time.Duration, time.Duration) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		fatal(err)
	}
	starts := newStartTimes()
	timers := map[string]*time.Timer{}
	go func() {
		for ev := range w.Events {
			if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) {
				continue
			}
			name := filepath.Base(ev.Name)
			if t, ok := timers[name]; ok {
				t.Reset(fsSettle)
				continue
			}
			timers[name] = time.AfterFunc(fsSettle, func() { starts.record(name, time.Now()) })
		}
	}()
	closed := writeFiles(dir, pace)
	return latencies(closed, starts.wait(30*time.Second))
}

// fsLatency runs an fs trigger over a runtime on SQLite and times the handlers.
func fsLatency(dir string, pace time.Duration) (time.Duration, time.Duration) {
	if err := os.MkdirAll(filepath.Join(dir, "inbox"), 0o755); err != nil {
		fatal(err)
	}
	starts := newStartTimes()
	handler := fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		starts.record(ev.Subject, time.Now())
		return fnhost.Result{}, nil
	})
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "fnhost.db"), sqlite.Options{})
	if err != nil {
		fatal(err)
	}
	defer st.Close()
	rt, err := runtime.New(runtime.Config{
		Store: st, Workers: 32,
		Functions: []*runtime.Function{{Name: "ingest", Handler: handler, Timeout: 30 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 3, InitialInterval: time.Second, MaxInterval: time.Minute}}},
	})
	if err != nil {
		fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		fatal(err)
	}
	tr := manifest.Trigger{Kind: "fs", FS: &manifest.FSTrigger{
		Path: filepath.Join(dir, "inbox"), Pattern: "*.dat", Events: []string{"created"},
		Settle: fsSettle, Rescan: manifest.DefaultRescan, Existing: true,
	}}
	trig, err := triggers.New(triggers.Env{
		Function: &manifest.Function{Name: "ingest", Triggers: []manifest.Trigger{tr}}, Trigger: tr,
		Submitter: rt, Store: st, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- trig.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // let it watch the directory
	closed := writeFiles(filepath.Join(dir, "inbox"), pace)
	started := starts.wait(30 * time.Second)
	cancel()
	if err := <-done; err != nil {
		fatal(err)
	}
	if err := rt.Stop(context.Background()); err != nil {
		fatal(err)
	}
	return latencies(closed, started)
}
