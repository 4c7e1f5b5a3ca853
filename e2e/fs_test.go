package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const fsManifest = `
version: 1
host:
  listen: {{ADDR}}
  workers: 8
functions:
  ingest:
    handler: {exec: [/bin/sh, ./ingest.sh]}
    retry: {max_attempts: 1}
    triggers:
      - fs: {path: ./inbox, pattern: "*.dat", recursive: true, events: [created, modified], settle: 400ms, existing: true, rescan: 1s}
`

// ingestScript answers with the size of the file on disk when the handler runs.
const ingestScript = `#!/bin/sh
event=$(cat)
abs=$(printf '%s' "$event" | sed -n 's/.*"abs_path":"\([^"]*\)".*/\1/p')
size=$(wc -c < "$abs" | tr -d ' ')
echo "{\"disk\": $size}"
`

// fsRun is one invocation of ingest as the API shows it.
type fsRun struct {
	id, state, path, op string
	size, disk          int64
}

// fsRuns lists every invocation of ingest with its event data and output.
func fsRuns(p *project) []fsRun {
	p.t.Helper()
	var out []fsRun
	for _, item := range p.all("function=ingest") {
		inv := p.invocation(item.ID)
		var ev struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
			Data    struct {
				Path string `json:"path"`
				Size int64  `json:"size"`
				Op   string `json:"op"`
			} `json:"data"`
		}
		if err := json.Unmarshal(inv.Event, &ev); err != nil {
			p.t.Fatalf("%s: event %s: %v", inv.ID, inv.Event, err)
		}
		if ev.Subject != ev.Data.Path || ev.Type != "fnhost.fs."+ev.Data.Op {
			p.t.Fatalf("%s: subject %q, type %q for data %+v", inv.ID, ev.Subject, ev.Type, ev.Data)
		}
		r := fsRun{id: inv.ID, state: string(inv.State), path: ev.Data.Path, op: ev.Data.Op, size: ev.Data.Size, disk: -1}
		var res struct {
			Disk *int64 `json:"disk"`
		}
		if json.Unmarshal(inv.Output, &res) == nil && res.Disk != nil {
			r.disk = *res.Disk
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// metrics returns the host's /metrics page.
func metrics(t *testing.T, p *project) string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// succeeded reports whether every path in want has a succeeded invocation.
func succeeded(runs []fsRun, want ...string) bool {
	done := map[string]bool{}
	for _, r := range runs {
		if r.state == "succeeded" {
			done[r.path] = true
		}
	}
	for _, w := range want {
		if !done[w] {
			return false
		}
	}
	return true
}

// writeSlowly writes chunks of size bytes, pausing between them, and closes the file.
func writeSlowly(path string, chunks, size int, pause time.Duration) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for i := range chunks {
		if _, err := f.WriteString(strings.Repeat(string(rune('a'+i%26)), size)); err != nil {
			f.Close()
			return err
		}
		time.Sleep(pause)
	}
	return f.Close()
}

// checkOnce fails unless runs holds exactly one succeeded invocation per path in want
// (and nothing else), created, with the size given and that size on disk when the
// handler ran.
func checkOnce(t *testing.T, runs []fsRun, want map[string]int64) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range runs {
		seen[r.path]++
		size, ok := want[r.path]
		if !ok {
			t.Errorf("unexpected invocation for %q: %+v", r.path, r)
			continue
		}
		if r.state != "succeeded" || r.op != "created" || r.size != size || r.disk != size {
			t.Errorf("%s: %+v, want succeeded, created, size %d also on disk when the handler ran", r.path, r, size)
		}
	}
	for path := range want {
		if seen[path] != 1 {
			t.Errorf("%s processed %d times, want exactly once", path, seen[path])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestFSInbox writes files slowly in chunks, one in a directory created after the
// start, and checks each is processed once, complete; then it stops the host, drops
// files while it is down, restarts it, and checks that they are processed and that
// nothing is processed twice.
func TestFSInbox(t *testing.T) {
	p := newProject(t, fsManifest, map[string]string{"ingest.sh": ingestScript, "inbox/.keep": ""})
	p.start()

	// Five chunks of 1 000 bytes, 150 ms apart: longer in all than settle (400 ms),
	// with every pause shorter than it.
	slow := []string{"a.dat", "new/sub/b.dat", "c.dat"}
	var wg sync.WaitGroup
	errs := make(chan error, len(slow))
	for _, name := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writeSlowly(filepath.Join(p.dir, "inbox", name), 5, 1000, 150*time.Millisecond)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the slowly written files to be processed", func() bool {
		return succeeded(fsRuns(p), slow...)
	})
	// A file written after them and processed tells that the trigger has submitted
	// what it was going to for the earlier ones.
	if err := os.WriteFile(filepath.Join(p.dir, "inbox", "sentinel-1.dat"), []byte("s1"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "sentinel-1.dat to be processed", func() bool {
		return succeeded(fsRuns(p), "sentinel-1.dat")
	})
	want := map[string]int64{"a.dat": 5000, "new/sub/b.dat": 5000, "c.dat": 5000, "sentinel-1.dat": 2}
	checkOnce(t, fsRuns(p), want)
	if m := metrics(t, p); !strings.Contains(m, `fnhost_fs_events_total{function="ingest",op="created"} 4`) {
		t.Fatalf("/metrics does not count the 4 created files:\n%s", m)
	}

	// Files dropped while the host is down are processed after the restart.
	p.stop()
	for name, body := range map[string]string{"late.dat": "late!", "new/late2.dat": "later", "new/deeper/late3.dat": "latest"} {
		path := filepath.Join(p.dir, "inbox", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = int64(len(body))
	}
	p.start()
	eventually(t, 30*time.Second, "the files dropped while the host was down to be processed", func() bool {
		return succeeded(fsRuns(p), "late.dat", "new/late2.dat", "new/deeper/late3.dat")
	})
	if err := os.WriteFile(filepath.Join(p.dir, "inbox", "sentinel-2.dat"), []byte("s2"), 0o644); err != nil {
		t.Fatal(err)
	}
	want["sentinel-2.dat"] = 2
	eventually(t, 30*time.Second, "sentinel-2.dat to be processed", func() bool {
		return succeeded(fsRuns(p), "sentinel-2.dat")
	})
	checkOnce(t, fsRuns(p), want)
	p.stop()
}
