package browsertest

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// page is the self-test's page: a button whose text changes a moment after a click, an
// input echoed into a paragraph, and keyboard shortcuts (Ctrl+K focuses the input,
// Escape takes the focus away).
const page = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>browsertest</title></head>
<body>
<h1 id="title">Self-test</h1>
<button id="save">Save</button>
<p id="status">idle</p>
<input id="name" name="name" autocomplete="off">
<p id="echo"></p>
<p id="keys">none</p>
<script>
document.getElementById("save").addEventListener("click", (e) => {
	e.target.textContent = "Saving";
	setTimeout(() => { document.getElementById("status").textContent = "saved at " + Date.now(); }, 300);
});
document.getElementById("name").addEventListener("input", (e) => {
	document.getElementById("echo").textContent = "Hello, " + e.target.value;
});
document.addEventListener("keydown", (e) => {
	const keys = document.getElementById("keys");
	if (e.key === "k" && e.ctrlKey) {
		e.preventDefault();
		document.getElementById("name").focus();
		keys.textContent = "ctrl+k";
	} else if (e.key === "Escape") {
		document.activeElement.blur();
		keys.textContent = "escape";
	} else if (e.key === "/" && document.activeElement === document.body) {
		e.preventDefault();
		document.getElementById("save").focus();
		keys.textContent = "slash";
	}
});
</script>
</body>
</html>`

// brokenPage throws, logs an error, fetches from a port where nothing listens (catching
// the rejection, so that only the failed request tells) and gets a 500.
const brokenPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>broken</title></head>
<body><p id="ready">ready</p>
<script>
console.error("the widget is %s", "broken", {code: 7});
fetch("http://127.0.0.1:%d/api/v1/nothing").catch(() => {});
fetch("/api/v1/fail");
setTimeout(() => { throw new Error("boom from a timer"); }, 0);
</script>
</body></html>`

// server serves the self-test's pages on 127.0.0.1.
func server(t *testing.T) *httptest.Server {
	closed := closedPort(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, strings.Replace(brokenPage, "%d", fmt.Sprint(closed), 1))
	})
	mux.HandleFunc("GET /api/v1/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failed on purpose", http.StatusInternalServerError)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// closedPort is a port of 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestHelpers(t *testing.T) {
	s := server(t)
	b := New(t)
	b.Navigate(s.URL+"/", "#save")

	if got := Eval[string](b, "document.title"); got != "browsertest" {
		t.Errorf("title %q", got)
	}
	if got := Eval[[]int](b, "[window.innerWidth, window.innerHeight, window.devicePixelRatio]"); !slices.Equal(got, []int{Width, Height, 1}) {
		t.Errorf("window %v, want %dx%d at scale 1", got, Width, Height)
	}
	if got := b.Text("#title"); got != "Self-test" {
		t.Errorf("Text(#title) = %q", got)
	}

	b.Click("#save")
	if got := b.Text("#save"); got != "Saving" {
		t.Errorf("button text after the click %q", got)
	}
	if got := b.WaitText("#status", "saved at"); !strings.HasPrefix(got, "saved at ") {
		t.Errorf("WaitText returned %q", got)
	}

	b.Type("#name", "Ada")
	if got := b.Focused(); got != "input#name" {
		t.Errorf("focus after Type on %q", got)
	}
	b.WaitText("#echo", "Hello, Ada")
	b.Type("#name", " L.\n")
	if got := Eval[string](b, `document.getElementById("name").value`); got != "Ada L." {
		t.Errorf("input value %q after a second Type", got)
	}

	b.Press(kb.Escape)
	b.WaitText("#keys", "escape")
	if got := b.Focused(); got != "body" {
		t.Errorf("focus after Escape on %q", got)
	}
	b.Press("/")
	b.WaitText("#keys", "slash")
	if got := b.Focused(); got != "button#save" {
		t.Errorf("focus after / on %q", got)
	}
	b.Press("k", chromedp.ModifierCtrl)
	b.WaitText("#keys", "ctrl+k")
	if got := b.Focused(); got != "input#name" {
		t.Errorf("focus after Ctrl+K on %q", got)
	}
	b.Press("a", chromedp.ModifierCtrl) // select all: the input has the focus
	b.Type("#name", "Grace")
	if got := b.WaitText("#echo", "Hello, Grace"); got != "Hello, Grace" {
		t.Errorf("echo %q after Ctrl+A and Type", got)
	}

	shot := b.Screenshot("helpers")
	if filepath.Dir(shot) != t.ArtifactDir() || filepath.Base(shot) != "helpers.png" {
		t.Errorf("screenshot at %s, want helpers.png in %s", shot, t.ArtifactDir())
	}
	if size := pngSize(t, shot); size.X != Width || size.Y != Height {
		t.Errorf("screenshot is %v, want %dx%d", size, Width, Height)
	}

	html, err := os.ReadFile(b.SaveHTML("helpers"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(html), "<!DOCTYPE html>") || !strings.Contains(string(html), `<button id="save">Saving</button>`) {
		t.Errorf("saved HTML is not the page as it is now:\n%s", html)
	}
	// The whole page, beyond the window.
	Eval[chromedp.Void](b, `document.body.style.height = "2000px"`)
	if size := pngSize(t, b.Screenshot("long")); size.X != Width || size.Y < 2000 {
		t.Errorf("screenshot of a page 2000 pixels long is %v", size)
	}

	if errs := b.Errors(); len(errs) != 0 {
		t.Errorf("errors on a page without any: %q", errs)
	}
}

// pngSize returns the size of the PNG image in file p.
func pngSize(t *testing.T, p string) image.Point {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is no PNG: %v", p, err)
	}
	return img.Bounds().Size()
}

// fakeTB records what the harness reports to it, so that a test can check the
// failures the harness reports, and runs its cleanups when told. What it does not
// override goes to the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }

// Fatalf records the failure and ends the goroutine, as testing.T.Fatalf does: call
// what can fail through f.run.
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// Skip records the skip as a failure that starts with "skip: " and ends the goroutine.
func (f *fakeTB) Skip(args ...any) {
	f.Errorf("skip: %s", fmt.Sprint(args...))
	runtime.Goexit()
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.failures) > 0
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run runs fn in a goroutine of its own, which Fatalf can end, and waits for it.
func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// finish runs the cleanups, last first, as the end of a test does, and returns the
// failures.
func (f *fakeTB) finish() []string {
	for {
		f.mu.Lock()
		n := len(f.cleanups)
		if n == 0 {
			failures := append([]string(nil), f.failures...)
			f.mu.Unlock()
			return failures
		}
		fn := f.cleanups[n-1]
		f.cleanups = f.cleanups[:n-1]
		f.mu.Unlock()
		f.run(fn)
	}
}

// leftovers returns the processes with an argument that names a file in dir.
func leftovers(t *testing.T, dir string) []string {
	var found []string
	for pid, cmdline := range using(dir) {
		found = append(found, fmt.Sprintf("%d: %s", pid, cmdline))
	}
	return found
}

// groupMembers returns the processes of the process group, but for zombies (which wait
// for init to reap them).
func groupMembers(t *testing.T, pgid int) []string {
	if runtime.GOOS != "linux" {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return []string{fmt.Sprintf("process group %d", pgid)}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm can hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) >= 3 && fields[0] != "Z" && fields[2] == fmt.Sprint(pgid) {
			found = append(found, string(stat[:i+1])+" "+fields[0])
		}
	}
	return found
}

// checkStopped fails the test when a process of b is left.
func checkStopped(t *testing.T, b *Browser) {
	t.Helper()
	if b.pgid == 0 {
		t.Fatalf("no process group recorded")
	}
	if members := groupMembers(t, b.pgid); len(members) > 0 {
		t.Errorf("processes of group %d left after the cleanup:\n%s", b.pgid, strings.Join(members, "\n"))
	}
	if left := leftovers(t, b.tmp); len(left) > 0 {
		t.Errorf("processes left after the cleanup:\n%s", strings.Join(left, "\n"))
	}
}

// newFake starts a browser for a fake test, whose failures the real test checks, and
// loads url in it until sel shows. Without Chromium the real test skips, or fails
// under CI=true, as New makes any test do.
func newFake(t *testing.T, url, sel string) (*fakeTB, *Browser) {
	t.Helper()
	if _, err := FindChromium(); err != nil {
		New(t)
	}
	fake := &fakeTB{TB: t}
	var b *Browser
	fake.run(func() {
		b = New(fake)
		b.Navigate(url, sel)
	})
	if b == nil {
		t.Fatalf("New failed: %q", fake.failures)
	}
	return fake, b
}

// waitErrors waits up to 10 s for b to have seen n page errors, and returns those it
// has: the page's errors may come from timers, and Errors waits for nothing.
func waitErrors(b *Browser, n int) []string {
	var errs []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if errs = b.Errors(); len(errs) == n {
			break
		}
	}
	return errs
}

func TestPageErrorsFailTheTest(t *testing.T) {
	s := server(t)
	fake, b := newFake(t, s.URL+"/broken", "#ready")
	errs := waitErrors(b, 4)
	failures := fake.finish()
	checkStopped(t, b)

	want := []string{
		`exception: Uncaught Error: boom from a timer (` + s.URL + `/broken:`,
		`console.error: the widget is broken {code: 7} (` + s.URL + `/broken:`,
		`request failed: GET http://127.0.0.1:`,
		`log (network): Failed to load resource: the server responded with a status of 500 (Internal Server Error) (` + s.URL + `/api/v1/fail)`,
	}
	if len(errs) != len(want) {
		t.Fatalf("Errors() = %q, want %d errors", errs, len(want))
	}
	joined := strings.Join(errs, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("no error with %q in\n%s", w, joined)
		}
	}
	if len(failures) == 0 || !strings.Contains(failures[0], "the page reported 4 error(s)") ||
		!strings.Contains(failures[0], "boom from a timer") {
		t.Fatalf("the harness did not fail the test for the page's errors: %q", failures)
	}
	// A failed test gets the page saved.
	html, err := os.ReadFile(filepath.Join(t.ArtifactDir(), "failure.html"))
	if err != nil || !strings.Contains(string(html), `<p id="ready">ready</p>`) {
		t.Errorf("failure.html: %v\n%s", err, html)
	}
	if _, err := os.Stat(filepath.Join(t.ArtifactDir(), "failure.png")); err != nil {
		t.Errorf("failure.png: %v", err)
	}
}

func TestAllowErrors(t *testing.T) {
	s := server(t)
	fake, b := newFake(t, s.URL+"/broken", "#ready")
	b.AllowErrors("boom from a timer")
	b.AllowErrors("the widget is")
	b.AllowErrors("status of 500")
	errs := waitErrors(b, 1)
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "request failed: ") {
		t.Errorf("Errors() = %q, want only the failed request", errs)
	}
	b.AllowErrors("request failed: GET http://127.0.0.1:")
	if failures := fake.finish(); len(failures) > 0 {
		t.Errorf("allowed errors failed the test: %q", failures)
	}
	checkStopped(t, b)
}

func TestTimeout(t *testing.T) {
	s := server(t)
	fake, b := newFake(t, s.URL+"/", "#save")
	// The page is loaded: only the actions below run against the short timeout.
	b.Timeout = 500 * time.Millisecond
	fake.run(func() {
		b.WaitText("#status", "never")
		t.Errorf("WaitText returned for a text that never comes")
	})
	fake.run(func() {
		b.Click("#no-such-button")
		t.Errorf("Click returned for an element that does not exist")
	})
	fake.run(func() {
		b.Text("#missing")
		t.Errorf("Text returned for an element that does not exist")
	})
	fake.run(func() {
		b.Text("p[")
		t.Errorf("Text returned for a selector that is no CSS")
	})
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("the harness's own failed actions count as page errors: %q", errs)
	}
	failures := fake.finish()
	checkStopped(t, b)
	want := []string{
		`browsertest: wait for the text of #status to contain "never": not done after 500ms; the text is "idle"`,
		`browsertest: click #no-such-button: not done after 500ms: no element matches #no-such-button`,
		`browsertest: read the text of #missing: no element matches #missing after 500ms`,
		`browsertest: read the text of p[: `,
	}
	if len(failures) < len(want) {
		t.Fatalf("failures %q, want %d", failures, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(failures[i], w) {
			t.Errorf("failure %d is %q, want %q", i, failures[i], w)
		}
	}
}

func TestNoChromium(t *testing.T) {
	defer func(p string) { debianChromium = p }(debianChromium)
	debianChromium = filepath.Join(t.TempDir(), "chromium")
	t.Setenv("FNHOST_CHROMIUM", "")
	t.Setenv("PATH", t.TempDir())
	if p, err := FindChromium(); !errors.Is(err, ErrNoChromium) || !strings.Contains(err.Error(), "scripts/tools.sh chromium") {
		t.Fatalf("FindChromium() = %q, %v; want an error that wraps ErrNoChromium and says how to install it", p, err)
	}
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		fake := &fakeTB{TB: t}
		fake.run(func() {
			New(fake)
			t.Errorf("New returned without Chromium")
		})
		failures := fake.finish()
		skipped := len(failures) == 1 && strings.HasPrefix(failures[0], "skip: browsertest: no Chromium")
		failed := len(failures) == 1 && strings.HasPrefix(failures[0], "browsertest: no Chromium")
		if ci == "true" && !failed || ci == "" && !skipped {
			t.Errorf("with CI=%q: %q, want it to %s", ci, failures, map[bool]string{true: "fail", false: "skip"}[ci == "true"])
		}
	}

	t.Setenv("FNHOST_CHROMIUM", filepath.Join(t.TempDir(), "missing"))
	if _, err := FindChromium(); err == nil || errors.Is(err, ErrNoChromium) {
		t.Errorf("a wrong $FNHOST_CHROMIUM gives %v, want an error that fails the test", err)
	}
}

// TestBrowserDiesWithTestBinary starts a test binary that starts a browser and hangs,
// kills it as a crash would end it, without its cleanups, and checks that no process of
// the browser is left.
func TestBrowserDiesWithTestBinary(t *testing.T) {
	if os.Getenv("BROWSERTEST_HANG") == "1" {
		New(t)
		fmt.Println("started")
		select {}
	}
	if runtime.GOOS != "linux" {
		t.Skip("the kernel kills the browser with the test binary only on Linux")
	}
	if _, err := FindChromium(); err != nil {
		New(t) // skips or fails as every test does
	}
	// The child's temporary directories, which hold its browser's profile and home
	// directory, are in tmp: Chromium's processes have paths in tmp in their arguments.
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrowserDiesWithTestBinary$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "BROWSERTEST_HANG=1", "TMPDIR="+tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	started := false
	for lines := bufio.NewScanner(out); !started && lines.Scan(); {
		started = lines.Text() == "started"
	}
	if !started {
		_ = cmd.Process.Kill()
		t.Fatalf("the test binary did not start a browser: %v", cmd.Wait())
	}
	if len(leftovers(t, tmp)) == 0 {
		t.Fatalf("no browser process with a path in %s", tmp)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = leftovers(t, tmp); len(left) == 0 {
			return
		}
	}
	killUsing(tmp)
	t.Errorf("browser processes outlived the test binary:\n%s", strings.Join(left, "\n"))
}
