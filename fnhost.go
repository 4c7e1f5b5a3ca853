// Package fnhost holds the vocabulary shared by every part of the function host:
// events, invocations and their states, attempts, handler results and errors.
//
// The packages that do the work (manifest, store, runtime, functions, triggers, host)
// depend on this package and not on each other, so that each can be read, tested and
// replaced on its own.
package fnhost

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Version is the fnhost release, overridden at build time with -ldflags.
var Version = "0.1.0-dev"

// State is where an invocation is in its life.
type State string

// The states of an invocation.
const (
	// StateScheduled waits for its run_at: a delayed invocation or a retry in backoff.
	StateScheduled State = "scheduled"
	// StatePending is ready to be claimed by a worker.
	StatePending State = "pending"
	// StateRunning is claimed by a host that holds a lease on it.
	StateRunning State = "running"
	// StateSucceeded finished with a successful attempt.
	StateSucceeded State = "succeeded"
	// StateFailed exhausted its attempts or failed permanently: the dead-letter set.
	StateFailed State = "failed"
	// StateCancelled was cancelled by a person or program before it finished.
	StateCancelled State = "cancelled"
	// StateAwaiting is a continuation whose parent has not finished yet.
	StateAwaiting State = "awaiting"
)

// States lists every state in the order a dashboard shows them.
var States = []State{StateScheduled, StatePending, StateRunning, StateSucceeded, StateFailed, StateCancelled, StateAwaiting}

// Terminal reports whether no further attempt will run without a retry.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// ParseState turns a name into a State, rejecting unknown names.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown state %q (want one of %s)", s, stateNames())
}

func stateNames() string {
	names := make([]string, len(States))
	for i, s := range States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Continuation says how a child invocation relates to its parent.
type Continuation string

// The kinds of continuation.
const (
	// ContinueThen runs after the parent succeeded, with the parent's output as data.
	ContinueThen Continuation = "then"
	// ContinueOnFailure runs once when the parent has exhausted its attempts.
	ContinueOnFailure Continuation = "on_failure"
)

// Outcome is how one attempt ended.
type Outcome string

// The outcomes of an attempt.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeFailed    Outcome = "failed"
	OutcomeTimeout   Outcome = "timeout"
	OutcomeCancelled Outcome = "cancelled"
	// OutcomeLost marks an attempt whose host stopped heartbeating; the invocation was rescued.
	OutcomeLost Outcome = "lost"
	// OutcomeReleased marks an attempt interrupted by a graceful shutdown; it runs again.
	OutcomeReleased Outcome = "released"
)

// Invocation is one persisted request to run a function, with its attempts.
type Invocation struct {
	ID           string          `json:"id"`
	Function     string          `json:"function"`
	State        State           `json:"state"`
	Attempt      int             `json:"attempt"`
	MaxAttempts  int             `json:"max_attempts"`
	Trigger      string          `json:"trigger"`
	DedupKey     string          `json:"dedup_key,omitempty"`
	Priority     int             `json:"priority"`
	RunAt        time.Time       `json:"run_at"`
	CreatedAt    time.Time       `json:"created_at"`
	StartedAt    *time.Time      `json:"started_at"`
	FinishedAt   *time.Time      `json:"finished_at"`
	Event        json.RawMessage `json:"event,omitempty"`
	Output       json.RawMessage `json:"output"`
	Error        *string         `json:"error"`
	ParentID     *string         `json:"parent_id"`
	Continuation Continuation    `json:"continuation,omitempty"`
	LeaseOwner   string          `json:"lease_owner,omitempty"`
	LeaseUntil   *time.Time      `json:"lease_until,omitempty"`
	Attempts     []Attempt       `json:"attempts,omitempty"`
}

// Attempt is the record of one run of a handler for an invocation.
type Attempt struct {
	Number       int       `json:"number"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	DurationMS   float64   `json:"duration_ms"`
	Outcome      Outcome   `json:"outcome"`
	Error        string    `json:"error,omitempty"`
	Log          string    `json:"log"`
	LogTruncated bool      `json:"log_truncated"`
	Owner        string    `json:"owner,omitempty"`
}

// Result is what a handler returns from a successful attempt.
type Result struct {
	// Output is the handler's result. Valid JSON is stored as is; anything else is
	// stored as a JSON string.
	Output []byte
	// ContentType describes Output when it is not JSON (for sync HTTP answers).
	ContentType string
}

// JSONOutput returns Output as a JSON value: itself if it is valid JSON, a JSON string
// otherwise, and null when empty.
func (r Result) JSONOutput() json.RawMessage {
	return AsJSON(r.Output)
}

// AsJSON returns b itself when it is a valid JSON document, null when it is empty or only
// white space, and b encoded as a JSON string otherwise.
func AsJSON(b []byte) json.RawMessage {
	t := strings.TrimSpace(string(b))
	if t == "" {
		return json.RawMessage("null")
	}
	if json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	s, _ := json.Marshal(string(b))
	return s
}

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that the executor fails the invocation at once, without retries.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

// NewID returns a new ULID: unique, and sortable by creation time.
func NewID() string {
	return NewIDAt(time.Now())
}

// NewIDAt returns a new ULID for the time t.
func NewIDAt(t time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), idEntropy).String()
}

// MinIDAt returns the smallest ULID of the millisecond of t: every id made by NewIDAt
// for that millisecond or a later one sorts at or after it, every earlier one before.
// Stores find the invocations created in a time range by it.
func MinIDAt(t time.Time) string {
	var id ulid.ULID
	if t.UnixMilli() > 0 {
		_ = id.SetTime(min(ulid.Timestamp(t), ulid.MaxTime())) // within MaxTime: no error
	}
	return id.String()
}

// IDTime returns the time of an id made by NewIDAt (to the millisecond), and false
// for a string that is no ULID.
func IDTime(id string) (time.Time, bool) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()).UTC(), true
}

// Submission is one request to run a function, as triggers, the API and the CLI make it.
type Submission struct {
	// ID is optional; a new ULID is used when empty.
	ID       string
	Function string
	// Trigger names the source: api, cli, http, cron, fs, s3, queue, then, on_failure.
	Trigger string
	// Event is the handler's input; when its ID is empty an event is made around its Data.
	Event    Event
	DedupKey string
	Priority int
	// RunAt delays the invocation; zero runs it now.
	RunAt time.Time
	// ReceiptKey, when set, names the source object the invocation is for (a file's
	// relative path, an S3 object): the store keeps one receipt per function and key, and
	// a submission whose receipt already holds ReceiptVersion is a duplicate.
	ReceiptKey string
	// ReceiptVersion is the version of the object named by ReceiptKey (a size and
	// modification time, an ETag), compared as an opaque string.
	ReceiptVersion string
}

// Message is one message for a durable named queue. Every function bound to the queue
// with a queue trigger gets an invocation for it, with Data as the event's data.
type Message struct {
	// Queue names the queue; in an API request it comes from the URL.
	Queue string          `json:"queue,omitempty"`
	Data  json.RawMessage `json:"data"`
	// Delay (a duration such as "30s") or NotBefore postpones the message.
	Delay     string     `json:"delay,omitempty"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	// DedupKey makes the message unique per consuming function.
	DedupKey string `json:"dedup_key,omitempty"`
	// Priority orders ready messages: higher first.
	Priority int `json:"priority,omitempty"`
}

// OutputMessagesKey is the key of a handler's JSON output under which it emits queue
// messages: {"fnhost_messages": [{"queue": "orders", "data": {…}}], …}. They are
// enqueued in the same transaction that records the success.
const OutputMessagesKey = "fnhost_messages"
