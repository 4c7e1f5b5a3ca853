package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/fnhost/fnhost"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// staticVersion is a hash of the static files, in their URLs, so that browsers may keep
// them for good and still get new ones with a new fnhost.
var staticVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(staticFiles, "static", func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := staticFiles.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// static serves the embedded CSS, script and icon.
func (d *Dashboard) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := staticFiles.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	if r.URL.Query().Get("v") == staticVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".html")
		if base == "layout" || base == "parts" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", name)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// pageData is what every page's template gets: the layout's fields and the page's own.
type pageData struct {
	Title    string
	Nav      string
	Prefix   string
	Static   string
	CSRF     string
	Flash    string
	ReadOnly bool
	LoggedIn bool
	Version  string
	// V versions the URLs of the static files.
	V    string
	Now  time.Time
	Page any
}

// render writes page (a template name) with status; title names it in the tab.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	t := d.pages[page]
	if t == nil {
		http.Error(w, "no template "+page, http.StatusInternalServerError)
		return
	}
	pd := pageData{
		Title: title, Nav: page, Prefix: Prefix, Static: Prefix + "static/", CSRF: d.csrfToken(w, r),
		ReadOnly: d.cfg.ReadOnly, LoggedIn: d.cfg.APIKey != "" && d.validSession(r), Version: fnhost.Version,
		V: staticVersion, Now: d.cfg.Now().UTC(), Page: data,
	}
	if r.Method == http.MethodGet {
		pd.Flash = takeFlash(w, r)
	}
	tmpl := "layout.html"
	if r.URL.Query().Get("fragment") == "main" {
		tmpl = "main" // the live refresh of a page swaps its main element only
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, pd); err != nil {
		d.cfg.Logger.Error("dashboard: render", "page", page, "err", err)
		http.Error(w, "render "+page+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// funcs are the template functions.
var funcs = template.FuncMap{
	"ago":        ago,
	"agoPtr":     agoOf,
	"ts":         timestamp,
	"tsPtr":      timestampOf,
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ms":         millis,
	"span":       span,
	"dur":        func(d time.Duration) string { return d.String() },
	"json":       prettyJSON,
	"num":        num,
	"compact":    compact,
	"str":        strOf,
	"clip":       clip,
	"terminal":   func(s fnhost.State) bool { return s.Terminal() },
	"filterURL":  filterURL,
	"query":      query,
	"pathEscape": url.PathEscape,
	"graphW":     func() float64 { return graphW },
	"graphH":     func() float64 { return graphH },
	"add":        func(a, b int) int { return a + b },
	"dict":       dict,
}

// dict makes a map of key-value pairs, to hand several values to a template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// ago writes how long before now t was ("3 min ago"), or how long after ("in 5 s").
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "–"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + roughly(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return roughly(d) + " ago"
}

func agoOf(t *time.Time, now time.Time) string {
	if t == nil {
		return "–"
	}
	return ago(*t, now)
}

// roughly writes d in its largest unit: 42 s, 5 min, 3 h, 2 d.
func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " d"
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

func timestampOf(t *time.Time) string {
	if t == nil {
		return "–"
	}
	return timestamp(*t)
}

// millis writes a duration in milliseconds in a readable unit.
func millis(ms float64) string {
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms*1000, 'f', 0, 64) + " µs"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case ms < 60_000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	}
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

// span writes the time from a to b (b nil: not finished), in a readable unit.
func span(a, b *time.Time) string {
	if a == nil || b == nil {
		return "–"
	}
	return millis(float64(b.Sub(*a).Microseconds()) / 1000)
}

// maxJSON caps the JSON a page shows of one event or output.
const maxJSON = 256 << 10

// prettyJSON indents raw JSON for reading, capped at maxJSON with a visible mark.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		buf.Reset()
		buf.Write(raw)
	}
	if buf.Len() > maxJSON {
		return buf.String()[:maxJSON] + fmt.Sprintf("\n… [truncated: %s more bytes]", thousands(int64(buf.Len()-maxJSON)))
	}
	return buf.String()
}

// num writes an integer of any kind as thousands does.
func num(v any) string {
	switch n := v.(type) {
	case int:
		return thousands(int64(n))
	case int64:
		return thousands(n)
	case int32:
		return thousands(int64(n))
	}
	return fmt.Sprint(v)
}

// thousands writes n with thin spaces between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func strOf(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// clip shortens s to n runes with an ellipsis.
func clip(n int, s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// idTime is the creation time in an invocation id or a list cursor, zero for a string
// that is neither.
func idTime(id string) time.Time {
	t, _ := fnhost.IDTime(id)
	return t
}

// query encodes key-value pairs as a query string (empty values left out).
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// filterURL is the invocations page with the filter f and key set to value.
func filterURL(f listFilter, key, value string) string {
	v := f.values()
	v.Del("cursor")
	if value == "" {
		v.Del(key)
	} else {
		v.Set(key, value)
	}
	if len(v) == 0 {
		return Prefix + "invocations"
	}
	return Prefix + "invocations?" + v.Encode()
}
