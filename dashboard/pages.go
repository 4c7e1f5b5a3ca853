package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

const (
	// pageSize is how many invocations a list shows.
	pageSize = 50
	// scanWindow is the MaxScan of one List call, and maxWindows how many a page may
	// take: a filter that indexes cannot answer examines at most 100 000 rows per page.
	scanWindow = 5000
	maxWindows = 20
	// searchBudget bounds the time a page spends looking for matches before it shows
	// what it found and offers to search further.
	searchBudget = 100 * time.Millisecond
)

func (d *Dashboard) overviewPage(w http.ResponseWriter, r *http.Request) error {
	data, err := d.overviewData(r.Context())
	if err != nil {
		return err
	}
	d.render(w, r, http.StatusOK, "overview", "Overview", data)
	return nil
}

type overviewData struct {
	O   *overview
	Day dailyTotals
}

func (d *Dashboard) overviewData(ctx context.Context) (overviewData, error) {
	o, err := d.overview.get(ctx)
	if err != nil {
		return overviewData{}, err
	}
	day, err := d.daily.get(ctx)
	if err != nil {
		return overviewData{}, err
	}
	return overviewData{o, day}, nil
}

// live streams the overview's live part as server-sent events: the rendered HTML of
// the part, whenever it changed, checked every two seconds.
func (d *Dashboard) live(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 3000\n\n")
	if err := rc.Flush(); err != nil {
		return nil
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var last []byte
	quiet := 0
	for {
		data, err := d.overviewData(r.Context())
		if err != nil && r.Context().Err() == nil {
			d.cfg.Logger.Warn("dashboard: live overview", "err", err)
		}
		if err == nil {
			var buf bytes.Buffer
			pd := pageData{Prefix: Prefix, Now: d.cfg.Now().UTC(), Page: data}
			if err := d.pages["overview"].ExecuteTemplate(&buf, "live", pd); err != nil {
				return err
			}
			if !bytes.Equal(buf.Bytes(), last) {
				last = buf.Bytes()
				quiet = 0
				var ev bytes.Buffer
				ev.WriteString("event: overview\n")
				for _, line := range bytes.Split(last, []byte("\n")) {
					ev.WriteString("data: ")
					ev.Write(line)
					ev.WriteByte('\n')
				}
				ev.WriteByte('\n')
				if _, err := w.Write(ev.Bytes()); err != nil {
					return nil
				}
			} else if quiet++; quiet%8 == 0 {
				if _, err := fmt.Fprint(w, ": still here\n\n"); err != nil {
					return nil
				}
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-d.quit:
			return nil
		case <-tick.C:
		}
	}
}

// listFilter is the filter of the invocations page, as its query string gives it.
type listFilter struct {
	Function, State, Trigger, Range, Since, Until, Cursor string
}

// timeRange is a choice of the time filter.
type timeRange struct {
	Value, Label string
	D            time.Duration
}

// ranges are the choices of the time filter.
var ranges = []timeRange{
	{"15m", "last 15 minutes", 15 * time.Minute},
	{"1h", "last hour", time.Hour},
	{"6h", "last 6 hours", 6 * time.Hour},
	{"24h", "last 24 hours", 24 * time.Hour},
	{"7d", "last 7 days", 7 * 24 * time.Hour},
}

// triggerKinds are the values of an invocation's trigger.
var triggerKinds = []string{"api", "cli", "http", "cron", "fs", "s3", "queue", "then", "on_failure"}

func (f listFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"function": f.Function, "state": f.State, "trigger": f.Trigger,
		"range": f.Range, "since": f.Since, "until": f.Until, "cursor": f.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Active reports whether any filter is set.
func (f listFilter) Active() bool {
	f.Cursor = ""
	return f != listFilter{}
}

func parseListFilter(q url.Values) listFilter {
	get := func(k string) string { return clip(200, strings.TrimSpace(q.Get(k))) }
	return listFilter{Function: get("function"), State: get("state"), Trigger: get("trigger"), Range: get("range"),
		Since: get("since"), Until: get("until"), Cursor: get("cursor")}
}

// parseTime reads a time of the filter form: RFC 3339, or a datetime-local field's
// 2006-01-02T15:04 taken as UTC.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2006-01-02T15:04 (UTC) or RFC 3339", s)
}

// storeFilter turns the page's filter into the store's; a bad value is an error for
// people.
func (f listFilter) storeFilter(now time.Time) (store.Filter, error) {
	sf := store.Filter{Function: f.Function, Trigger: f.Trigger, Cursor: f.Cursor}
	if f.State != "" {
		st, err := fnhost.ParseState(f.State)
		if err != nil {
			return sf, err
		}
		sf.State = st
	}
	if f.Range != "" {
		i := slices.IndexFunc(ranges, func(r timeRange) bool { return r.Value == f.Range })
		if i < 0 {
			return sf, fmt.Errorf("unknown time range %q", f.Range)
		}
		sf.Since = now.Add(-ranges[i].D)
	}
	for _, p := range []struct {
		s   string
		dst *time.Time
	}{{f.Since, &sf.Since}, {f.Until, &sf.Until}} {
		if p.s == "" {
			continue
		}
		t, err := parseTime(p.s)
		if err != nil {
			return sf, err
		}
		if p.dst == &sf.Since && !sf.Since.IsZero() && sf.Since.After(t) {
			continue // the range is narrower
		}
		*p.dst = t
	}
	if f.Cursor != "" && idTime(f.Cursor).IsZero() {
		return sf, fmt.Errorf("the page cursor %q is not an invocation id", f.Cursor)
	}
	return sf, nil
}

// search lists up to pageSize invocations of f, in windows of scanWindow rows, until the
// page is full, the rows run out, or the page has spent maxWindows windows or
// searchBudget. The cursor it returns continues the listing; searched, when the page is
// short but the listing is not over, is how far back it looked.
func (d *Dashboard) search(ctx context.Context, f store.Filter) (items []*fnhost.Invocation, next string, searched time.Time, err error) {
	start := time.Now()
	f.MaxScan = scanWindow
	for w := 0; ; w++ {
		f.Limit = pageSize - len(items)
		page, err := d.cfg.Store.List(ctx, f)
		if err != nil {
			return nil, "", time.Time{}, err
		}
		items = append(items, page.Items...)
		next = page.NextCursor
		if next == "" || len(items) >= pageSize || w+1 >= maxWindows || time.Since(start) > searchBudget {
			break
		}
		f.Cursor = next
	}
	if next != "" && len(items) < pageSize {
		searched = idTime(next)
	}
	return items, next, searched, nil
}

type invocationsData struct {
	Filter    listFilter
	Problem   string
	Items     []*fnhost.Invocation
	Next      string
	Searched  time.Time
	Functions []string
	States    []fnhost.State
	Triggers  []string
	Ranges    []timeRange
}

func (d *Dashboard) invocationsPage(w http.ResponseWriter, r *http.Request) error {
	f := parseListFilter(r.URL.Query())
	data := invocationsData{Filter: f, States: fnhost.States, Triggers: triggerKinds, Ranges: ranges}
	for _, fn := range d.cfg.Backend.Functions() {
		data.Functions = append(data.Functions, fn.Name)
	}
	status := http.StatusOK
	sf, err := f.storeFilter(d.cfg.Now())
	if err != nil {
		data.Problem = err.Error()
		status = http.StatusBadRequest
	} else {
		data.Items, data.Next, data.Searched, err = d.search(r.Context(), sf)
		if err != nil {
			return err
		}
	}
	d.render(w, r, status, "invocations", "Invocations", data)
	return nil
}

// validID reports whether id could be an invocation id: it keeps odd paths out of the
// store's queries and error messages.
func validID(id string) bool {
	return id != "" && len(id) <= 64 && !strings.ContainsFunc(id, func(c rune) bool {
		return !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-' || c == '_')
	})
}

type invocationData struct {
	Inv      *fnhost.Invocation
	Children []*fnhost.Invocation
	Data     json.RawMessage
}

func (d *Dashboard) invocationPage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !validID(id) {
		return notFound("There is no invocation %q.", clip(80, id))
	}
	inv, err := d.cfg.Store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("There is no invocation %s: it never existed, or it was pruned after the retention period.", id)
	}
	if err != nil {
		return err
	}
	children, err := d.cfg.Store.List(r.Context(), store.Filter{ParentID: id, Limit: 50})
	if err != nil {
		return err
	}
	data := invocationData{Inv: inv, Children: children.Items}
	var ev fnhost.Event
	if json.Unmarshal(inv.Event, &ev) == nil {
		data.Data = ev.Data
	}
	d.render(w, r, http.StatusOK, "invocation", "Invocation "+id, data)
	return nil
}

// act runs an action on invocation id and redirects to its page with what happened.
func (d *Dashboard) act(w http.ResponseWriter, r *http.Request, verb string, fn func(context.Context, string) (*fnhost.Invocation, error)) error {
	id := r.PathValue("id")
	if !validID(id) {
		return notFound("There is no invocation %q.", clip(80, id))
	}
	inv, err := fn(r.Context(), id)
	back := Prefix + "invocations/" + url.PathEscape(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("There is no invocation %s.", id)
	case errors.Is(err, store.ErrConflict):
		return d.redirect(w, r, back, "Not "+verb+": "+err.Error())
	case err != nil:
		return err
	}
	d.invalidate()
	msg := fmt.Sprintf("%s: the invocation is %s.", strings.ToUpper(verb[:1])+verb[1:], inv.State)
	return d.redirect(w, r, back, msg)
}

func (d *Dashboard) retry(w http.ResponseWriter, r *http.Request) error {
	return d.act(w, r, "retried", d.cfg.Backend.Retry)
}

func (d *Dashboard) cancel(w http.ResponseWriter, r *http.Request) error {
	return d.act(w, r, "cancelled", d.cfg.Backend.Cancel)
}

// functionRow is a function with what the functions page tells of it.
type functionRow struct {
	Function
	Counts store.FunctionCounts
	Day    totals
	Last   *fnhost.Invocation
}

func (d *Dashboard) functionRows(ctx context.Context, only string) ([]functionRow, error) {
	day, err := d.daily.get(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := d.counts.get(ctx)
	if err != nil {
		return nil, err
	}
	var rows []functionRow
	for _, fn := range d.cfg.Backend.Functions() {
		if only != "" && fn.Name != only {
			continue
		}
		row := functionRow{Function: fn, Counts: counts[fn.Name], Day: day.ByFunction[fn.Name]}
		page, err := d.cfg.Store.List(ctx, store.Filter{Function: fn.Name, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Items) > 0 {
			row.Last = page.Items[0]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (d *Dashboard) functionsPage(w http.ResponseWriter, r *http.Request) error {
	rows, err := d.functionRows(r.Context(), "")
	if err != nil {
		return err
	}
	d.render(w, r, http.StatusOK, "functions", "Functions", rows)
	return nil
}

type functionData struct {
	Row     functionRow
	Recent  []*fnhost.Invocation
	Data    string
	Problem string
}

func (d *Dashboard) functionPage(w http.ResponseWriter, r *http.Request) error {
	return d.showFunction(w, r, http.StatusOK, "", "")
}

func (d *Dashboard) showFunction(w http.ResponseWriter, r *http.Request, status int, data, problem string) error {
	name := r.PathValue("name")
	rows, err := d.functionRows(r.Context(), name)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return notFound("There is no function %q in the manifest.", clip(80, name))
	}
	recent, err := d.cfg.Store.List(r.Context(), store.Filter{Function: name, Limit: 20})
	if err != nil {
		return err
	}
	d.render(w, r, status, "function", "Function "+name, functionData{Row: rows[0], Recent: recent.Items, Data: data, Problem: problem})
	return nil
}

// run invokes a function now, with the JSON of the form as its event's data.
func (d *Dashboard) run(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !slices.ContainsFunc(d.cfg.Backend.Functions(), func(f Function) bool { return f.Name == name }) {
		return notFound("There is no function %q in the manifest.", clip(80, name))
	}
	text := strings.TrimSpace(r.PostForm.Get("data"))
	data := json.RawMessage("null")
	if text != "" {
		if !json.Valid([]byte(text)) {
			return d.showFunction(w, r, http.StatusBadRequest, text, "The data is not valid JSON. Write text as a JSON string, in double quotes.")
		}
		data = json.RawMessage(text)
	}
	id, err := d.cfg.Backend.Invoke(r.Context(), name, data)
	if err != nil {
		return d.showFunction(w, r, http.StatusServiceUnavailable, text, "The invocation could not be stored: "+err.Error())
	}
	d.invalidate()
	return d.redirect(w, r, Prefix+"invocations/"+url.PathEscape(id), "Invoked "+name+".")
}

type queueRow struct {
	Name      string
	Consumers []queueConsumer
}

type queueConsumer struct {
	Function string
	Counts   store.FunctionCounts
}

func (d *Dashboard) queuesPage(w http.ResponseWriter, r *http.Request) error {
	counts, err := d.counts.get(r.Context())
	if err != nil {
		return err
	}
	queues := d.cfg.Backend.Queues()
	var rows []queueRow
	for _, name := range slices.Sorted(maps.Keys(queues)) {
		row := queueRow{Name: name}
		for _, fn := range queues[name] {
			row.Consumers = append(row.Consumers, queueConsumer{fn, counts[fn]})
		}
		rows = append(rows, row)
	}
	d.render(w, r, http.StatusOK, "queues", "Queues", rows)
	return nil
}

type failedData struct {
	Function  string
	Functions []string
	Items     []*fnhost.Invocation
	Next      string
	Total     int64
}

func (d *Dashboard) failedPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	data := failedData{Function: clip(200, q.Get("function"))}
	cursor := q.Get("cursor")
	if cursor != "" && idTime(cursor).IsZero() {
		return badRequest("The page cursor %q is not an invocation id.", clip(80, cursor))
	}
	counts, err := d.counts.get(r.Context())
	if err != nil {
		return err
	}
	for fn, c := range counts {
		if c.Failed > 0 {
			data.Functions = append(data.Functions, fn)
		}
		if data.Function == "" || data.Function == fn {
			data.Total += c.Failed
		}
	}
	slices.Sort(data.Functions)
	page, err := d.cfg.Store.List(r.Context(), store.Filter{State: fnhost.StateFailed, Function: data.Function, Limit: pageSize, Cursor: cursor})
	if err != nil {
		return err
	}
	data.Items, data.Next = page.Items, page.NextCursor
	d.render(w, r, http.StatusOK, "failed", "Failed", data)
	return nil
}

// retryAllLimit bounds the invocations one "retry all" retries.
const retryAllLimit = 1000

// retryFailed retries the failed invocations (of one function, or all), up to
// retryAllLimit, eight at a time.
func (d *Dashboard) retryFailed(w http.ResponseWriter, r *http.Request) error {
	function := clip(200, r.PostForm.Get("function"))
	ctx := r.Context()
	var (
		mu       sync.Mutex
		retried  int
		problems []string
		wg       sync.WaitGroup
	)
	ids := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				_, err := d.cfg.Backend.Retry(ctx, id)
				mu.Lock()
				if err != nil {
					problems = append(problems, id+": "+err.Error())
				} else {
					retried++
				}
				mu.Unlock()
			}
		}()
	}
	sent, err := d.feedFailed(ctx, function, ids)
	close(ids)
	wg.Wait()
	if err != nil {
		return err
	}
	d.invalidate()
	msg := fmt.Sprintf("Retried %s failed %s.", thousands(int64(retried)), plural(retried, "invocation"))
	if len(problems) > 0 {
		msg += fmt.Sprintf(" %d could not be retried (%s).", len(problems), clip(200, problems[0]))
	}
	if sent >= retryAllLimit {
		msg += fmt.Sprintf(" One press retries at most %d: press again for more.", retryAllLimit)
	}
	return d.redirect(w, r, Prefix+"failed"+query("function", function), msg)
}

// feedFailed sends the ids of the failed invocations of function (all functions when
// empty), newest first, up to retryAllLimit, and returns how many it sent.
func (d *Dashboard) feedFailed(ctx context.Context, function string, ids chan<- string) (int, error) {
	sent := 0
	f := store.Filter{State: fnhost.StateFailed, Function: function, Limit: 200}
	for sent < retryAllLimit && ctx.Err() == nil {
		page, err := d.cfg.Store.List(ctx, f)
		if err != nil {
			return sent, err
		}
		for _, inv := range page.Items[:min(len(page.Items), retryAllLimit-sent)] {
			ids <- inv.ID
			sent++
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	return sent, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func (d *Dashboard) serversPage(w http.ResponseWriter, r *http.Request) error {
	servers, err := d.cfg.Backend.Servers(r.Context())
	if err != nil {
		return err
	}
	d.render(w, r, http.StatusOK, "servers", "Servers", servers)
	return nil
}
