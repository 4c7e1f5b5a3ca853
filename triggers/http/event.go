package http

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	nethttp "net/http"
	"strings"
	"unicode/utf8"
)

// requestData is the data of an HTTP trigger's event: the request, without its secrets.
type requestData struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Params  map[string]string   `json:"params"`
	Query   map[string][]string `json:"query"`
	Headers map[string][]string `json:"headers"`
	// Body is the body as JSON when it is JSON, a string when it is text, null when it
	// is empty, and absent when the body is binary (see BodyBase64).
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 string          `json:"body_base64,omitempty"`
	RemoteAddr string          `json:"remote_addr"`
}

// secretHeaders never reach the event.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", KeyHeader}

func (t *Trigger) eventData(r *nethttp.Request, body []byte) (json.RawMessage, error) {
	d := requestData{
		Method:     r.Method,
		Path:       r.URL.Path,
		Params:     make(map[string]string, len(t.params)),
		Query:      map[string][]string{},
		Headers:    make(map[string][]string, len(r.Header)),
		RemoteAddr: r.RemoteAddr,
	}
	for _, name := range t.params {
		d.Params[name] = r.PathValue(name)
	}
	for k, v := range r.URL.Query() {
		if k == KeyParam && t.keyHash != nil {
			continue
		}
		d.Query[k] = v
	}
	for k, v := range r.Header {
		d.Headers[k] = v
	}
	for _, h := range secretHeaders {
		delete(d.Headers, h)
	}
	if t.hmacHeader != "" {
		delete(d.Headers, t.hmacHeader)
	}
	d.Body, d.BodyBase64 = bodyValue(body, r.Header.Get("Content-Type"))

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// bodyValue returns the body as a JSON value: null when empty, the JSON itself when the
// content type says JSON (or is absent) and the body is JSON, a string otherwise. A
// body that is not UTF-8 comes back base64-encoded instead.
//
// curl -d sends JSON as application/x-www-form-urlencoded; a "form" body that is a JSON
// object or array is taken as JSON, since no real form body starts with { or [.
func bodyValue(body []byte, contentType string) (json.RawMessage, string) {
	if len(body) == 0 {
		return json.RawMessage("null"), ""
	}
	if !utf8.Valid(body) {
		return nil, base64.StdEncoding.EncodeToString(body)
	}
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			mt = "invalid"
		}
	}
	if json.Valid(body) {
		switch {
		case mt == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"):
			return json.RawMessage(body), ""
		case mt == "application/x-www-form-urlencoded":
			if t := bytes.TrimSpace(body); t[0] == '{' || t[0] == '[' {
				return json.RawMessage(body), ""
			}
		}
	}
	s, err := json.Marshal(string(body))
	if err != nil {
		return nil, base64.StdEncoding.EncodeToString(body)
	}
	return s, ""
}
