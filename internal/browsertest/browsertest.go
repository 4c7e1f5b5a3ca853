// Package browsertest drives a real headless Chromium from tests, through
// github.com/chromedp/chromedp, for the browser tests of the web dashboard.
//
// New starts a browser with one tab for the test and stops it, with every process it
// started, when the test ends:
//
//	b := browsertest.New(t)
//	b.Navigate(srv.URL+"/", "#functions")
//	b.Click("#refresh")
//	b.WaitText("#status", "3 functions")
//	b.Press("k", chromedp.ModifierCtrl)
//	if got := b.Focused(); got != "input#search" {
//		t.Errorf("focus on %s, want the search box", got)
//	}
//	b.Screenshot("functions")
//
// Each helper fails the test when its action has not finished after Browser.Timeout
// (DefaultTimeout unless the test changes it), so a page that hangs fails with a message
// that names the action instead of stalling the suite. Browser.Ctx is the chromedp
// context of the tab, for the chromedp actions the helpers do not cover: Run runs them
// under the same timeout, and Eval reads a JavaScript value.
//
// The page's uncaught JavaScript exceptions, its console.error and failed console.assert
// calls, the errors of the browser log (such as a response with status 4xx or 5xx) and
// the failed requests to 127.0.0.1 or localhost fail the test when it ends.
// AllowErrors accepts the expected ones; Errors returns those seen so far. When the test
// has failed, the page is saved as failure.png and failure.html into its artifact
// directory, and Chromium's output goes to the test log.
//
// Screenshots and saved pages go to the test's ArtifactDir: a temporary directory,
// unless the test runs with `go test -artifacts -outputdir DIR`, which keeps them under
// DIR/_artifacts.
//
// Chromium is $FNHOST_CHROMIUM, /usr/bin/chromium, or the first of chromium,
// chromium-browser, google-chrome and headless-shell in PATH. When there is none, the
// test is skipped with a message saying to run `scripts/tools.sh chromium`, or fails when
// the environment has CI=true.
//
// The browser is headless, with a viewport of Width×Height pixels at device scale 1 and
// the language en-US, so that screenshots are stable, and a fresh profile in the test's
// temporary directory (and a home directory of its own next to it). It reaches nothing
// beyond the machine: host names other than localhost do not resolve, so a page that
// loads anything from the internet reports an error at once instead of waiting for a
// timeout, and the background services that call Google's servers (turned off where a
// flag can) fail without a packet sent. As root it runs without its sandbox, which needs
// an unprivileged user. Its processes are in a process group of their own, but for its
// crash handlers; the cleanup kills the group and every process with a path of the
// test's temporary directory in its arguments, which all of Chromium's have. When the
// test binary dies without its cleanups (a -timeout, a crash), Chromium exits as the
// pipe it is driven through closes (on Linux the kernel also kills it), and its other
// processes exit with it.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/internal/testproc"
)

// Width and Height are the size of the page's viewport (and of the browser window), in
// CSS pixels, which are device pixels too (the device scale factor is 1): a screenshot
// of a page that fits in the viewport is Width×Height pixels.
const (
	Width  = 1280
	Height = 900
)

// DefaultTimeout is how long a helper waits for its action unless Browser.Timeout says
// otherwise.
const DefaultTimeout = 15 * time.Second

// startTimeout bounds how long Chromium may take to open its first tab.
const startTimeout = time.Minute

// cleanupTimeout bounds each of the browser steps of the cleanup (collecting the last
// errors, saving the page of a failed test).
const cleanupTimeout = 5 * time.Second

// ErrNoChromium is what the error of FindChromium wraps when no Chromium is installed.
var ErrNoChromium = errors.New("browsertest: Chromium not installed")

// Browser is a headless Chromium with one tab, which the test's cleanup stops. Its
// methods fail the test (with t.Fatalf) when their action fails or times out, so call
// them from the test's goroutine.
type Browser struct {
	// Ctx is the chromedp context of the tab, for chromedp.Run and chromedp.Do with the
	// actions the helpers do not cover. It has no deadline: derive one with
	// context.WithTimeout, or use Run and Eval, which apply Timeout.
	Ctx context.Context
	// Timeout bounds each action of the helpers; New sets it to DefaultTimeout.
	Timeout time.Duration

	t      testing.TB
	path   string          // the Chromium binary
	tmp    string          // the directory of the profile and the home directory
	dir    string          // the profile directory (--user-data-dir)
	output *testlog.Buffer // Chromium's stdout and stderr
	pgid   int             // Chromium's process group, 0 before it started

	// started is set once the tab answers: before, the cleanup must not use it (an
	// action on a tab without a browser starts one).
	started bool

	cancelTab, cancelAlloc context.CancelFunc

	errs pageErrors
}

// New starts Chromium for the test and returns its tab, showing about:blank. The test's
// cleanup reports the page's errors, saves the page when the test has failed, and stops
// the browser with all its processes. The test is skipped when Chromium is not installed
// (it fails instead when the environment has CI=true).
func New(t testing.TB) *Browser {
	t.Helper()
	path, err := FindChromium()
	if err != nil {
		testproc.SkipOrFail(t, err)
	}
	tmp := t.TempDir()
	b := &Browser{
		Timeout: DefaultTimeout,
		t:       t,
		path:    path,
		tmp:     tmp,
		dir:     filepath.Join(tmp, "profile"),
		output:  &testlog.Buffer{},
	}
	b.errs.init()
	// Chromium keeps a few things in the home directory even with a profile directory
	// (its crash handler's database, a settings cache): give it one of its own.
	home := filepath.Join(tmp, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatalf("browsertest: %v", err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(b.dir),
		chromedp.WindowSize(Width, Height),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.Flag("lang", "en-US"),
		// Chromium needs its sandbox off as root, and only then.
		chromedp.Flag("no-sandbox", os.Geteuid() == 0),
		chromedp.Flag("disable-gpu", true),
		// Fewer background connections to Google's servers, which a closed network
		// refuses (each refusal is a line of noise in Chromium's output).
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"+
			"AutofillServerCommunication,CertificateTransparencyComponentUpdater,NetworkTimeServiceQuerying"),
		// Some services (account lookups, the device check-in, the network time) call
		// Google even with the flags above: no name but localhost resolves, so that they
		// fail inside Chromium without a packet sent, and so does a page that loads
		// anything from the internet.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_DATA_HOME="+filepath.Join(home, ".local", "share")),
		chromedp.CombinedOutput(b.output),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			testproc.Own(cmd)
			fmt.Fprintf(b.output, "browsertest: %s\n", strings.Join(cmd.Args, " "))
		}),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.errs.listen))
	b.Ctx, b.cancelTab, b.cancelAlloc = tabCtx, cancelTab, cancelAlloc
	t.Cleanup(b.cleanup)

	// The first action starts the browser and binds it to the context it runs with, so
	// that one has no deadline; startTimeout is enforced from here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tabCtx) }()
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		err = fmt.Errorf("no tab after %v", startTimeout)
	}
	if err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	b.started = true
	if c := chromedp.FromContext(tabCtx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pgid = c.Browser.Process().Pid // the leader of its process group
	}
	// The window has the browser's (invisible) toolbars: the page gets less than
	// Width×Height without this.
	b.Run("set the viewport", chromedp.EmulateViewport(Width, Height))
	return b
}

// cleanup reports the page's errors, saves the page of a failed test and stops the
// browser.
func (b *Browser) cleanup() {
	t := b.t
	if b.started && b.running() {
		errs, allowed := b.collect()
		for _, e := range allowed {
			t.Logf("browsertest: allowed page error: %s", e)
		}
		if len(errs) > 0 {
			t.Errorf("browsertest: the page reported %d error(s) (AllowErrors accepts expected ones):\n\t%s",
				len(errs), strings.Join(errs, "\n\t"))
		}
		if t.Failed() {
			b.saveFailure()
		}
	}
	b.stop()
	if t.Failed() {
		t.Logf("browsertest: Chromium output:\n%s", b.output.String())
	}
}

// running reports whether the tab still answers.
func (b *Browser) running() bool {
	ctx, cancel := context.WithTimeout(b.Ctx, cleanupTimeout)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void]("0")) == nil
}

// saveFailure saves the page as failure.png and failure.html, logging what it could not
// save.
func (b *Browser) saveFailure() {
	ctx, cancel := context.WithTimeout(b.Ctx, cleanupTimeout)
	defer cancel()
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](pageHTML)); err != nil {
		b.t.Logf("browsertest: could not read the page's HTML: %v", err)
	} else if p, err := b.writeArtifact("failure.html", []byte(html)); err != nil {
		b.t.Logf("browsertest: %v", err)
	} else {
		b.t.Logf("browsertest: the page at the end of the test is %s", p)
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		b.t.Logf("browsertest: could not take a screenshot: %v", err)
	} else if p, err := b.writeArtifact("failure.png", png); err != nil {
		b.t.Logf("browsertest: %v", err)
	} else {
		b.t.Logf("browsertest: screenshot at the end of the test: %s", p)
	}
}

// stop kills the browser and every process of it that is left.
func (b *Browser) stop() {
	// Canceling the tab that started the browser kills its main process and waits for
	// it. (Its profile is thrown away, so there is nothing to close gracefully.)
	b.cancelTab()
	b.cancelAlloc()
	if b.pgid > 0 {
		_ = syscall.Kill(-b.pgid, syscall.SIGKILL)
	}
	// The crash handlers leave the group (they exit with the browser); they, as all of
	// Chromium's processes, have a path in tmp on their command line. Look until a few
	// looks in a row find none, as a process that forks just now shows up late.
	deadline := time.Now().Add(5 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); {
		if killUsing(b.tmp) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FindChromium returns the Chromium binary: $FNHOST_CHROMIUM, /usr/bin/chromium, or the
// first of chromium, chromium-browser, google-chrome and headless-shell in PATH. The
// error wraps ErrNoChromium and says how to install it.
func FindChromium() (string, error) {
	if p := os.Getenv("FNHOST_CHROMIUM"); p != "" {
		if testproc.IsExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("browsertest: $FNHOST_CHROMIUM is %q, which is no executable file", p)
	}
	if testproc.IsExecutable(debianChromium) {
		return debianChromium, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", testproc.Missing{Is: ErrNoChromium, Msg: "browsertest: no Chromium (looked at $FNHOST_CHROMIUM, /usr/bin/chromium and chromium, " +
		"chromium-browser, google-chrome, headless-shell in PATH); run `scripts/tools.sh chromium` " +
		"(as root: apt-get install chromium), or set FNHOST_CHROMIUM to a Chromium binary"}
}

// debianChromium is where Debian's package chromium puts it (a script that runs
// /usr/lib/chromium/chromium).
var debianChromium = "/usr/bin/chromium"

// Run runs chromedp actions in the tab, failing the test when one fails or when they
// take longer than Timeout; what names them in the message.
func (b *Browser) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	run(b, what, chromedp.Steps(actions...))
}

// runOn is Run for actions that wait for the element that the CSS selector sel matches:
// a timeout says whether there is one.
func (b *Browser) runOn(what, sel string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Steps(actions...)); err != nil {
		why := ""
		if errors.Is(err, context.DeadlineExceeded) && sel != "" {
			why = b.why(sel)
		}
		b.failWhy(what, err, why)
	}
}

// why says why a wait for the element that sel matches can have timed out, or nothing.
func (b *Browser) why(sel string) string {
	ctx, cancel := context.WithTimeout(b.Ctx, time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel))))
	switch {
	case err != nil:
		return ""
	case n == 0:
		return ": no element matches " + sel
	default:
		return fmt.Sprintf(": %d element(s) match %s, the first not visible", n, sel)
	}
}

// Eval evaluates the JavaScript expression in the page and returns its value, decoded
// as chromedp.Evaluate decodes it into a T (a string, a number, a bool, a struct for an
// object...). A promise is awaited.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	return run(b, "evaluate "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// run runs a under the timeout, failing the test when it fails.
func run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// fail fails the test for an action that returned err.
func (b *Browser) fail(what string, err error) {
	b.t.Helper()
	b.failWhy(what, err, "")
}

// failWhy is fail with the reason of a timeout, ": ..." or "".
func (b *Browser) failWhy(what string, err error, why string) {
	b.t.Helper()
	if errors.Is(err, context.DeadlineExceeded) {
		b.t.Fatalf("browsertest: %s: not done after %v%s (failure.png and failure.html in the artifact directory show the page)",
			what, b.Timeout, why)
	}
	b.t.Fatalf("browsertest: %s: %v", what, err)
}

// Navigate loads url in the tab and waits until the element that the CSS selector
// waitFor matches is visible (an empty waitFor waits only for the load event).
func (b *Browser) Navigate(url, waitFor string) {
	b.t.Helper()
	actions := []chromedp.Action[chromedp.Void]{chromedp.Navigate(url)}
	what := "navigate to " + url
	if waitFor != "" {
		actions = append(actions, chromedp.WaitVisible(chromedp.CSS(waitFor)))
		what += " and wait for " + waitFor
	}
	b.runOn(what, waitFor, actions...)
}

// Click clicks, with the mouse, the middle of the element that the CSS selector
// matches, once it is visible.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.runOn("click "+sel, sel, chromedp.Click(chromedp.CSS(sel)))
}

// Type focuses the element that the CSS selector matches, once it is visible, and
// types text into it as key presses, after what it already holds ("\n" is Enter). To
// replace what an input holds, select it first, as a user would: Click it, then
// Press("a", chromedp.ModifierCtrl). (chromedp.Clear empties only the value attribute,
// which an input no longer shows once edited, and chromedp.SetValue cannot set "".)
func (b *Browser) Type(sel, text string) {
	b.t.Helper()
	b.runOn(fmt.Sprintf("type %q into %s", text, sel), sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Press presses key in the page, as a keyboard would, with the modifiers held down: a
// character such as "/" or "k", or a key of package github.com/chromedp/chromedp/kb
// such as kb.Escape or kb.ArrowDown. It goes to the element with the focus (the page's
// body when none has it). Press("k", chromedp.ModifierCtrl) is Ctrl+K.
func (b *Browser) Press(key string, modifiers ...chromedp.Modifier) {
	b.t.Helper()
	b.Run("press "+keyName(key, modifiers), chromedp.KeyEvent(key, chromedp.KeyModifiers(modifiers...)))
}

// keyName names the keys for a message, such as "Ctrl+k" or "Escape".
func keyName(key string, modifiers []chromedp.Modifier) string {
	var names []string
	for _, m := range modifiers {
		names = append(names, m.String())
	}
	var keys []string
	for _, r := range key {
		if ev := kb.Encode(r); len(ev) > 0 && ev[0].Key != "" {
			keys = append(keys, ev[0].Key)
		} else {
			keys = append(keys, fmt.Sprintf("%q", r))
		}
	}
	return strings.Join(append(names, strings.Join(keys, " ")), "+")
}

// Text returns the text of the element that the CSS selector matches (its innerText),
// once there is one.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return b.pollText("read the text of "+sel, sel, func(string) bool { return true })
}

// WaitText waits until the text of the element that the CSS selector matches contains
// substr, and returns that text. The test fails when it does not within Timeout, with
// the last text seen in the message.
func (b *Browser) WaitText(sel, substr string) string {
	b.t.Helper()
	return b.pollText(fmt.Sprintf("wait for the text of %s to contain %q", sel, substr), sel,
		func(text string) bool { return strings.Contains(text, substr) })
}

// pollInterval is how often pollText looks at the page.
const pollInterval = 25 * time.Millisecond

// pollText looks at the innerText of the element that sel matches until ok accepts it,
// failing the test after Timeout.
func (b *Browser) pollText(what, sel string, ok func(string) bool) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Timeout)
	defer cancel()
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : null })()`, jsString(sel))
	var last *string
	var lastErr error
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// An error (the page navigating, a selector that is no CSS) is retried until
		// the deadline, and reported if it was the last word.
		text, err := chromedp.Run(ctx, chromedp.Evaluate[*string](expr))
		switch {
		case err == nil:
			last, lastErr = text, nil
			if text != nil && ok(*text) {
				return *text
			}
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			switch {
			case lastErr != nil:
				b.t.Fatalf("browsertest: %s: %v", what, lastErr)
			case last == nil:
				b.t.Fatalf("browsertest: %s: no element matches %s after %v", what, sel, b.Timeout)
			default:
				b.t.Fatalf("browsertest: %s: not done after %v; the text is %q", what, b.Timeout, *last)
			}
			return ""
		case <-tick.C:
		}
	}
}

// Focused describes the element that has the focus (document.activeElement, looked for
// inside shadow roots and same-origin frames too) as a CSS selector: tag#id, else
// tag[name="..."], else tag.class1.class2, else the tag name; "body" when no element
// has it.
func (b *Browser) Focused() string {
	b.t.Helper()
	return run(b, "find the focused element", chromedp.Evaluate[string](focusedJS))
}

const focusedJS = `(() => {
	let e = document.activeElement;
	for (;;) {
		if (e && e.shadowRoot && e.shadowRoot.activeElement) { e = e.shadowRoot.activeElement; continue; }
		let inner = null;
		try { inner = e && e.contentDocument && e.contentDocument.activeElement; } catch (_) {}
		if (inner && inner !== e.contentDocument.body) { e = inner; continue; }
		break;
	}
	if (!e || e === document.body || e === document.documentElement) return "body";
	const tag = e.tagName.toLowerCase();
	if (e.id) return tag + "#" + e.id;
	const name = e.getAttribute("name");
	if (name) return tag + '[name="' + name + '"]';
	return [tag, ...e.classList].join(".");
})()`

// pageHTML is the expression of the page's HTML, with its doctype.
const pageHTML = `(() => {
	const d = document.doctype;
	return (d ? "<!DOCTYPE " + d.name + ">\n" : "") + document.documentElement.outerHTML;
})()`

// Screenshot saves a PNG of the whole page (beyond the window when it is longer) as
// name.png in the test's artifact directory, logs its path and returns it.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png := run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	p, err := b.writeArtifact(name+".png", png)
	if err != nil {
		b.t.Fatal(err.Error())
	}
	b.t.Logf("browsertest: screenshot %s", p)
	return p
}

// SaveHTML saves the page's HTML as it is now (the DOM, not what the server sent) as
// name.html in the test's artifact directory, logs its path and returns it. The cleanup
// of a failed test does so as failure.html.
func (b *Browser) SaveHTML(name string) string {
	b.t.Helper()
	html := run(b, "read the page's HTML", chromedp.Evaluate[string](pageHTML))
	p, err := b.writeArtifact(name+".html", []byte(html))
	if err != nil {
		b.t.Fatal(err.Error())
	}
	b.t.Logf("browsertest: page saved as %s", p)
	return p
}

// writeArtifact writes data as the file name in the test's artifact directory.
func (b *Browser) writeArtifact(name string, data []byte) (string, error) {
	p := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("browsertest: save %s: %w", name, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", fmt.Errorf("browsertest: save %s: %w", name, err)
	}
	return p, nil
}

// AllowErrors makes the page errors whose text contains substr expected ones: they are
// logged at the end of the test, but do not fail it. It applies to the errors seen
// before the call too.
func (b *Browser) AllowErrors(substr string) {
	b.errs.allow(substr)
}

// Errors returns the page errors seen so far that AllowErrors does not accept, each as
// one line: "exception: ...", "console.error: ...", "log (network): ..." or
// "request failed: ...". The test fails at its end when there are any.
func (b *Browser) Errors() []string {
	errs, _ := b.collect()
	return errs
}

// collect returns the errors seen so far, the unexpected and the allowed ones. It first
// runs a command in the tab, so that the events that the browser sent before its answer
// have been recorded.
func (b *Browser) collect() (errs, allowed []string) {
	ctx, cancel := context.WithTimeout(b.Ctx, cleanupTimeout)
	defer cancel()
	_ = chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void]("0"))
	return b.errs.split()
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// pageErrors collects the errors of the page from the events of the tab.
type pageErrors struct {
	mu      sync.Mutex
	msgs    []string
	allowed []string
	// requests has the loopback requests under way, for the message of a failure.
	requests map[string]string
	// reported has the requests whose failure is recorded, so that the log entry and
	// the loadingFailed event of one request make one message.
	reported map[string]bool
}

func (p *pageErrors) init() {
	p.requests = map[string]string{}
	p.reported = map[string]bool{}
}

func (p *pageErrors) allow(substr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.allowed = append(p.allowed, substr)
}

// split returns the messages recorded, those no AllowErrors accepts and the others.
func (p *pageErrors) split() (errs, allowed []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
next:
	for _, m := range p.msgs {
		for _, a := range p.allowed {
			if strings.Contains(m, a) {
				allowed = append(allowed, m)
				continue next
			}
		}
		errs = append(errs, m)
	}
	return errs, allowed
}
