package fnhost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// SpecVersion is the CloudEvents version of every event fnhost hands to a handler.
const SpecVersion = "1.0"

// Event is a CloudEvents 1.0 envelope in its structured JSON form: the input of every
// invocation. Data holds JSON; other payloads are carried as a JSON string.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	Subject         string          `json:"subject,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// NewEvent builds an event with a fresh id and the current time. Data must be JSON (or
// empty); use AsJSON to wrap other bytes.
func NewEvent(source, typ, subject string, data json.RawMessage) Event {
	ev := Event{
		SpecVersion: SpecVersion,
		ID:          NewID(),
		Source:      source,
		Type:        typ,
		Time:        time.Now().UTC(),
		Subject:     subject,
		Data:        data,
	}
	if len(data) > 0 {
		ev.DataContentType = "application/json"
	}
	return ev
}

// Validate checks the attributes CloudEvents requires.
func (e Event) Validate() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("event: specversion must be %q, got %q", SpecVersion, e.SpecVersion)
	case e.ID == "":
		return fmt.Errorf("event: id is required")
	case e.Source == "":
		return fmt.Errorf("event: source is required")
	case e.Type == "":
		return fmt.Errorf("event: type is required")
	}
	if len(e.Data) > 0 && !json.Valid(e.Data) {
		return fmt.Errorf("event: data is not valid JSON")
	}
	return nil
}

// Info describes the invocation an attempt belongs to. The executor puts it in the
// context handed to every handler.
type Info struct {
	InvocationID string
	Function     string
	Attempt      int
	MaxAttempts  int
	Trigger      string
	Deadline     time.Time
	// Log receives the attempt's log lines; it is captured, capped and stored.
	Log io.Writer
}

type infoKey struct{}

// WithInfo returns a context carrying the invocation info.
func WithInfo(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFrom returns the invocation info of a handler's context.
func InfoFrom(ctx context.Context) (Info, bool) {
	info, ok := ctx.Value(infoKey{}).(Info)
	return info, ok
}

// Logf writes a line to the log of the attempt running in ctx. Builtin handlers use it
// for the log that the dashboard and API show beside the attempt.
func Logf(ctx context.Context, format string, args ...any) {
	info, ok := InfoFrom(ctx)
	if !ok || info.Log == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		line += "\n"
	}
	_, _ = io.WriteString(info.Log, line)
}

// Handler runs one attempt of an invocation. ctx carries Info and is cancelled at the
// attempt's deadline. An error fails the attempt; wrap it with Permanent to skip retries.
type Handler interface {
	Invoke(ctx context.Context, ev Event) (Result, error)
}

// HandlerFunc adapts a Go function to Handler: the signature of builtin functions.
type HandlerFunc func(ctx context.Context, ev Event) (Result, error)

// Invoke calls f.
func (f HandlerFunc) Invoke(ctx context.Context, ev Event) (Result, error) { return f(ctx, ev) }

type inputFileKey struct{}

// WithInputFile returns a context carrying the path of a local file the attempt works
// on: the s3 trigger's download option streams the object there, and exec handlers
// find it in FNHOST_INPUT_FILE. The file is removed when the attempt ends.
func WithInputFile(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, inputFileKey{}, path)
}

// InputFile returns the path set by WithInputFile, or "".
func InputFile(ctx context.Context) string {
	p, _ := ctx.Value(inputFileKey{}).(string)
	return p
}
