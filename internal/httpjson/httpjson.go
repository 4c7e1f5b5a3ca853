// Package httpjson writes the JSON answers that the API and the HTTP triggers share, so
// that a client sees one error shape and one "accepted" shape wherever it calls fnhost.
package httpjson

import (
	"encoding/json"
	"net/http"

	"github.com/fnhost/fnhost"
)

// Write answers status with v as JSON.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Error is the detail of an error answer: {"error": {"code", "message"}}, with the
// invocation when the error concerns one.
type Error struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	InvocationID string `json:"invocation_id,omitempty"`
	StatusURL    string `json:"status_url,omitempty"`
}

// WriteError answers status with the error e.
func WriteError(w http.ResponseWriter, status int, e Error) {
	if e.InvocationID != "" && e.StatusURL == "" {
		e.StatusURL = StatusURL(e.InvocationID)
	}
	Write(w, status, struct {
		Error Error `json:"error"`
	}{e})
}

// Accepted is the 202 answer for an invocation that is persisted but not finished.
type Accepted struct {
	ID        string       `json:"id"`
	Function  string       `json:"function"`
	State     fnhost.State `json:"state,omitempty"`
	StatusURL string       `json:"status_url"`
	Duplicate bool         `json:"duplicate"`
}

// WriteAccepted answers 202 with a, and its status URL in the Location header.
func WriteAccepted(w http.ResponseWriter, a Accepted) {
	if a.StatusURL == "" {
		a.StatusURL = StatusURL(a.ID)
	}
	w.Header().Set("Location", a.StatusURL)
	Write(w, http.StatusAccepted, a)
}

// StatusURL is where the API shows an invocation.
func StatusURL(id string) string { return "/api/v1/invocations/" + id }
