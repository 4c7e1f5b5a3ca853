package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/browsertest"
	"github.com/fnhost/fnhost/store"
)

// history stores an hour of finished invocations of ok, a few a minute, so
// that the overview's graph and the functions' rates have something to show.
func (b *bundle) history() {
	b.t.Helper()
	now := time.Now().UTC()
	var invs []store.NewInvocation
	for m := 59; m >= 1; m-- {
		n := 20 + (m*37)%25
		for i := range n {
			created := now.Add(-time.Duration(m)*time.Minute + time.Duration(i)*time.Second)
			inv := store.NewInvocation{ID: fnhost.NewIDAt(created), Function: "ok", Trigger: "queue", MaxAttempts: 3,
				CreatedAt: created, Owner: "earlier", Event: json.RawMessage(fmt.Sprintf(`{"data":{"order":%d}}`, m*100+i)),
				Completion: &store.Completion{State: fnhost.StateSucceeded, Output: json.RawMessage(`{"ok":true}`),
					Attempt: fnhost.Attempt{FinishedAt: created.Add(40 * time.Millisecond), Outcome: fnhost.OutcomeSucceeded}}}
			if i%17 == 3 || (m > 20 && m < 26 && i%3 == 0) {
				// A failed first attempt; the host retries it now, and it succeeds.
				inv.Completion = &store.Completion{State: fnhost.StateScheduled, RunAt: created.Add(time.Second),
					Attempt: fnhost.Attempt{FinishedAt: created.Add(30 * time.Millisecond), Outcome: fnhost.OutcomeFailed, Error: "upstream timed out"}}
			}
			invs = append(invs, inv)
		}
	}
	if _, err := b.h.Store().Enqueue(context.Background(), invs); err != nil {
		b.t.Fatal(err)
	}
}

// TestBrowser drives the dashboard in a real headless Chromium: the overview updates
// live, the failed count leads to the failed invocations, one of them is retried with
// the button and its page shows it succeed without a reload; then the same with the
// keyboard alone. Screenshots go to the test's artifact directory (go test -artifacts)
// and, when FNHOST_SCREENSHOTS names a directory, those of the overview and of the
// invocation page there too (the README's pictures: FNHOST_SCREENSHOTS=$PWD/docs).
func TestBrowser(t *testing.T) {
	b := setup(t, "")
	b.history()
	failed := b.failed(3)
	for range 5 {
		b.waitState(b.invoke("ok", `{"name": "Ada"}`, ""), fnhost.StateSucceeded)
	}
	br := browsertest.New(t)

	br.Navigate(b.base+"/dashboard/", ready+"#live")
	br.WaitText(`[data-count="failed"]`, "3")
	shot(t, br, "overview")

	// The overview is live: a new failure shows without a reload.
	b.failed(1)
	br.WaitText(`[data-count="failed"]`, "4")

	// The failed count leads to the failed invocations.
	br.Click(`a[href="/dashboard/invocations?state=failed"]`)
	br.WaitText("h1", "Invocations")
	if got := browsertest.Eval[string](br, `document.querySelector('select[name="state"]').value`); got != "failed" {
		t.Errorf("the state filter shows %q, want failed", got)
	}
	rows := browsertest.Eval[int](br, `document.querySelectorAll("table[data-rows] tbody tr").length`)
	if rows != 4 {
		t.Errorf("%d rows under state failed, want 4", rows)
	}
	shot(t, br, "invocations-failed")

	// Open the oldest failure and retry it with the button: the page follows it to the end.
	br.Click(fmt.Sprintf(`a[href="/dashboard/invocations/%s"]`, failed[0]))
	br.WaitText(ready+"[data-state]", "failed")
	b.pass.Store(true)
	br.Click(`[data-action="retry"]`)
	br.WaitText(".flash", "Retried")
	br.WaitText("[data-state]", "succeeded")
	br.WaitText("main", "passed")
	shot(t, br, "invocation")

	// The keyboard alone: g d goes to the failed set, j selects the first row, Enter
	// opens it, r retries it.
	br.Press("g")
	br.Press("d")
	br.WaitText(ready+"h1", "Failed invocations")
	br.Press("j")
	if f := br.Focused(); f != "a.mono" {
		t.Errorf("after j the focus is on %s, want the first row's link", f)
	}
	br.Press(kb.Enter)
	br.WaitText(ready+"[data-state]", "failed")
	br.Press("r")
	br.WaitText("[data-state]", "succeeded")

	// ? shows the shortcuts; Escape closes them.
	br.Press("?")
	if !browsertest.Eval[bool](br, `document.getElementById("help").open`) {
		t.Error("? did not open the shortcuts")
	}
	shot(t, br, "shortcuts")
	br.Press(kb.Escape)
	if browsertest.Eval[bool](br, `document.getElementById("help").open`) {
		t.Error("Escape did not close the shortcuts")
	}

	// t switches the theme: auto, light, dark; the choice stays across pages.
	br.Press("t")
	br.Press("t")
	if got := browsertest.Eval[string](br, `document.documentElement.dataset.theme || ""`); got != "dark" {
		t.Errorf("after t t the theme is %q, want dark", got)
	}
	br.Navigate(b.base+"/dashboard/", ready+"#live")
	if got := browsertest.Eval[string](br, `getComputedStyle(document.body).backgroundColor`); got == "rgb(247, 248, 250)" {
		t.Errorf("the dark theme did not stay: the background is the light one, %s", got)
	}
	shot(t, br, "overview-dark")
}

// TestBrowserWithoutJavaScript: with scripts off, every page still reads, and the
// retry button still works (a plain form).
func TestBrowserWithoutJavaScript(t *testing.T) {
	b := setup(t, "")
	id := b.failed(1)[0]
	br := browsertest.New(t)
	br.Run("turn scripts off", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		return chromedp.Void{}, tg.Call(ctx, emulation.SetScriptExecutionDisabled.Method,
			&emulation.SetScriptExecutionDisabledParams{Value: true}, nil)
	})
	for _, page := range []string{"", "invocations", "functions", "queues", "failed", "servers"} {
		br.Navigate(b.base+"/dashboard/"+page, "main h1")
	}
	br.Navigate(b.base+"/dashboard/invocations?state=failed", "table[data-rows]")
	br.Click(fmt.Sprintf(`a[href="/dashboard/invocations/%s"]`, id))
	br.WaitText("[data-state]", "failed")
	b.pass.Store(true)
	br.Click(`[data-action="retry"]`)
	br.WaitText(".flash", "Retried")
	b.waitState(id, fnhost.StateSucceeded)
	// Without the script the page does not refresh itself: a reload shows the end.
	br.Navigate(b.base+"/dashboard/invocations/"+id, "[data-state]")
	br.WaitText("[data-state]", "succeeded")
	if shown := browsertest.Eval[bool](br, `!document.querySelector("[data-help]").hidden`); shown {
		t.Error("the shortcuts button shows without the script that makes it work")
	}
}

// ready prefixes a selector so that it matches once the page's script has run: keys
// pressed before would go unheard.
const ready = `html[data-js="ready"] `

// shot saves a screenshot, and copies it to $FNHOST_SCREENSHOTS when that is set.
func shot(t *testing.T, br *browsertest.Browser, name string) {
	t.Helper()
	p := br.Screenshot(name)
	dir := os.Getenv("FNHOST_SCREENSHOTS")
	if dir == "" || (name != "overview" && name != "invocation") {
		return
	}
	data, err := os.ReadFile(p)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "dashboard-"+name+".png"), data, 0o644)
	}
	if err != nil {
		t.Fatalf("copy the screenshot: %v", err)
	}
}
