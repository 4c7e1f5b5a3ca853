package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"strconv"
	"strings"
)

// response is an invocation's output that describes an HTTP answer: a JSON object with
// only the keys status (a number), headers (an object) and body.
type response struct {
	status  int
	headers nethttp.Header
	body    json.RawMessage
}

// hopHeaders are set by the server, not by a function's output.
var hopHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// writeOutput answers a sync request with a succeeded invocation's output. An output
// shaped like {"status", "headers", "body"} is the answer; any other output is the 200
// body: a JSON string as text/plain, other JSON as application/json. An output shaped
// like an answer but not a valid one is an error, and nothing is written.
func writeOutput(w nethttp.ResponseWriter, r *nethttp.Request, output json.RawMessage) error {
	out := bytes.TrimSpace(output)
	if len(out) == 0 {
		out = []byte("null")
	}
	resp, ok, err := asResponse(out)
	if err != nil {
		return err
	}
	var body []byte
	if ok {
		if body, err = resp.bodyBytes(); err != nil {
			return err
		}
	} else {
		resp = &response{status: nethttp.StatusOK, headers: nethttp.Header{}}
		body = out
		if out[0] == '"' {
			var s string
			if err := json.Unmarshal(out, &s); err != nil {
				return err
			}
			body = []byte(s)
		} else {
			resp.headers.Set("Content-Type", "application/json")
		}
	}
	h := w.Header()
	for k, v := range resp.headers {
		h[k] = v
	}
	if h.Get("Content-Type") == "" && len(body) > 0 {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	noBody := r.Method == nethttp.MethodHead || resp.status == nethttp.StatusNoContent || resp.status == nethttp.StatusNotModified
	if !noBody {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(resp.status)
	if !noBody {
		_, _ = w.Write(body)
	}
	return nil
}

// bodyBytes is the body to send: a JSON string's value as is, nothing for null or no
// body, any other JSON value as JSON (with Content-Type application/json unless the
// headers say otherwise).
func (r *response) bodyBytes() ([]byte, error) {
	b := bytes.TrimSpace(r.body)
	switch {
	case len(b) == 0 || string(b) == "null":
		return nil, nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		return []byte(s), nil
	}
	if r.headers.Get("Content-Type") == "" {
		r.headers.Set("Content-Type", "application/json")
	}
	return b, nil
}

// asResponse reads out as an HTTP answer. It reports false when out does not have the
// shape of one, and an error when it has the shape but not valid contents.
func asResponse(out []byte) (*response, bool, error) {
	if out[0] != '{' {
		return nil, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil || len(m) == 0 {
		return nil, false, nil
	}
	for k := range m {
		if k != "status" && k != "headers" && k != "body" {
			return nil, false, nil
		}
	}
	status, hasStatus := m["status"]
	if hasStatus && !isJSONNumber(status) {
		return nil, false, nil
	}
	headers, hasHeaders := m["headers"]
	if hasHeaders && headers[0] != '{' && string(headers) != "null" {
		return nil, false, nil
	}

	resp := &response{status: nethttp.StatusOK, headers: nethttp.Header{}, body: m["body"]}
	if hasStatus {
		n, err := strconv.Atoi(string(status))
		if err != nil || n < 200 || n > 599 {
			return nil, true, fmt.Errorf("status %s: want an integer from 200 to 599", status)
		}
		resp.status = n
	}
	if hasHeaders && headers[0] == '{' {
		var hm map[string]json.RawMessage
		if err := json.Unmarshal(headers, &hm); err != nil {
			return nil, true, fmt.Errorf("headers: %w", err)
		}
		for name, raw := range hm {
			if !validHeaderName(name) {
				return nil, true, fmt.Errorf("headers: invalid header name %q", name)
			}
			values, err := headerValues(raw)
			if err != nil {
				return nil, true, fmt.Errorf("headers: %s: %w", name, err)
			}
			key := nethttp.CanonicalHeaderKey(name)
			if hopHeaders[key] {
				continue
			}
			for _, v := range values {
				resp.headers.Add(key, v)
			}
		}
	}
	return resp, true, nil
}

func isJSONNumber(b json.RawMessage) bool {
	return len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

// headerValues reads a header's value: a string, a number or a boolean, or a list of
// them for a header sent several times.
func headerValues(raw json.RawMessage) ([]string, error) {
	var list []json.RawMessage
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
	} else {
		list = []json.RawMessage{raw}
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		var v string
		switch {
		case len(item) == 0 || string(item) == "null":
			continue
		case item[0] == '"':
			if err := json.Unmarshal(item, &v); err != nil {
				return nil, err
			}
		case item[0] == '{' || item[0] == '[':
			return nil, fmt.Errorf("want a string, a number or a list of them")
		default:
			v = string(item)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("the value contains a line break or NUL")
		}
		out = append(out, v)
	}
	return out, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
