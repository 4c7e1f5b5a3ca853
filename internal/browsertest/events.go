package browsertest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
)

// listen records the errors among the events of the tab. chromedp calls it in the loop
// that reads the tab's messages, in their order, so it only takes notes.
func (p *pageErrors) listen(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		p.msgs = append(p.msgs, "exception: "+exceptionText(ev.ExceptionDetails))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			p.msgs = append(p.msgs, "console."+string(ev.Type)+": "+argsText(ev.Args)+stackPlace(ev.StackTrace))
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil || e.Level != log.EntryLevelError || isFavicon(e.URL) {
			return
		}
		if id := string(e.NetworkRequestID); id != "" {
			if p.reported[id] {
				return
			}
			p.reported[id] = true
		}
		msg := fmt.Sprintf("log (%s): %s", e.Source, e.Text)
		if e.URL != "" && !strings.Contains(e.Text, e.URL) {
			msg += " (" + e.URL + ")"
		}
		p.msgs = append(p.msgs, msg)
	case *network.EventRequestWillBeSent:
		if ev.Request != nil && isLoopback(ev.Request.URL) && !isFavicon(ev.Request.URL) {
			p.requests[string(ev.RequestID)] = ev.Request.Method + " " + ev.Request.URL
		}
	case *network.EventLoadingFinished:
		delete(p.requests, string(ev.RequestID))
	case *network.EventLoadingFailed:
		id := string(ev.RequestID)
		req, ok := p.requests[id]
		delete(p.requests, id)
		// A canceled request is one the page (or a navigation) gave up.
		if !ok || ev.Canceled || p.reported[id] {
			return
		}
		p.reported[id] = true
		msg := "request failed: " + req + ": " + ev.ErrorText
		if ev.BlockedReason != "" {
			msg += " (blocked: " + string(ev.BlockedReason) + ")"
		}
		p.msgs = append(p.msgs, msg)
	}
}

// isLoopback reports whether the URL is one of this machine: 127.0.0.1 (or another
// loopback address) or localhost.
func isLoopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isFavicon reports whether the URL is that of /favicon.ico, which Chromium requests
// from every site by itself: a site without one is no error of its pages.
func isFavicon(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Path == "/favicon.ico"
}

// exceptionText is the error of an uncaught exception and where it was thrown, such as
// "Uncaught Error: boom (http://127.0.0.1:4000/app.js:12:5)".
func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	text := d.Text
	if d.Exception != nil {
		// The description of an Error holds its stack; its first line is enough, as
		// the place follows.
		desc, _, _ := strings.Cut(valueText(d.Exception), "\n")
		text = strings.TrimSpace(text + " " + desc)
	}
	place := d.URL
	if place == "" && d.StackTrace != nil && len(d.StackTrace.CallFrames) > 0 {
		place = d.StackTrace.CallFrames[0].URL
	}
	if place != "" {
		text += fmt.Sprintf(" (%s:%d:%d)", place, d.LineNumber+1, d.ColumnNumber+1)
	}
	return text
}

// stackPlace is " (URL:LINE:COLUMN)" of the innermost frame of st, "" without one.
func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 || st.CallFrames[0].URL == "" {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d:%d)", f.URL, f.LineNumber+1, f.ColumnNumber+1)
}

// argsText is the arguments of a console call as the DevTools console shows them: the
// format directives %s, %d, %i, %f, %o, %O and %c of a first string argument take the
// arguments that follow, and the others are appended, separated by spaces.
func argsText(args []*runtime.RemoteObject) string {
	var parts []string
	if len(args) > 0 && args[0] != nil && args[0].Type == runtime.RemoteObjectTypeString {
		format, rest := valueText(args[0]), args[1:]
		var b strings.Builder
		for i := 0; i < len(format); i++ {
			if format[i] != '%' || i+1 == len(format) {
				b.WriteByte(format[i])
				continue
			}
			i++
			switch verb := format[i]; {
			case verb == '%':
				b.WriteByte('%')
			case strings.IndexByte("sdifoOc", verb) < 0 || len(rest) == 0:
				b.WriteByte('%')
				b.WriteByte(verb)
			default:
				if verb != 'c' { // %c styles the text
					b.WriteString(valueText(rest[0]))
				}
				rest = rest[1:]
			}
		}
		parts, args = append(parts, b.String()), rest
	}
	for _, a := range args {
		parts = append(parts, valueText(a))
	}
	return strings.Join(parts, " ")
}

// valueText is a value of the page as text: a string as it is, another primitive as
// JSON, an object by a preview of its properties when there is one (not an Error, whose
// description holds its message and stack), else by its description.
func valueText(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return "null"
	case o.Type == runtime.RemoteObjectTypeString:
		var s string
		if err := json.Unmarshal(o.Value, &s); err == nil {
			return s
		}
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case o.Type == runtime.RemoteObjectTypeUndefined:
		return "undefined"
	case o.Subtype == runtime.RemoteObjectSubtypeNull:
		return "null"
	case o.Preview != nil && o.Subtype != runtime.RemoteObjectSubtypeError:
		return previewText(o.Preview)
	}
	if o.Description != "" {
		return o.Description
	}
	if len(o.Value) > 0 {
		return string(o.Value)
	}
	return string(o.Type)
}

// previewText is an object's preview, such as {code: 7, name: "x"} or [1, 2].
func previewText(p *runtime.ObjectPreview) string {
	var items []string
	array := p.Subtype == runtime.ObjectPreviewSubtypeArray
	for _, prop := range p.Properties {
		v := prop.Value
		switch {
		case prop.ValuePreview != nil:
			v = previewText(prop.ValuePreview)
		case prop.Type == runtime.PropertyPreviewTypeString:
			v = strconv.Quote(v)
		}
		if !array {
			v = prop.Name + ": " + v
		}
		items = append(items, v)
	}
	if p.Overflow {
		items = append(items, "…")
	}
	body := strings.Join(items, ", ")
	switch {
	case array:
		return "[" + body + "]"
	case p.Description == "Object":
		return "{" + body + "}"
	default:
		return p.Description + " {" + body + "}"
	}
}
