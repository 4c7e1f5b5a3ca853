package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
)

// ErrUnknownQueue is returned for a message to a queue that no function consumes.
var ErrUnknownQueue = errors.New("no function consumes queue")

// BadMessageError is returned for a message that cannot be accepted as written.
type BadMessageError struct{ Reason string }

func (e *BadMessageError) Error() string { return e.Reason }

func badMessage(format string, args ...any) error {
	return &BadMessageError{Reason: fmt.Sprintf(format, args...)}
}

// QueueResult tells what became of one message for one consuming function.
type QueueResult struct {
	ID        string `json:"id"`
	Function  string `json:"function"`
	Duplicate bool   `json:"duplicate"`
}

// Queues lists the queues and the functions that consume each.
func (r *Runtime) Queues() map[string][]string { return r.cfg.Queues }

// Publish persists messages: each becomes one invocation per function bound to its
// queue. When it returns without error they are durable.
func (r *Runtime) Publish(ctx context.Context, msgs ...fnhost.Message) ([][]QueueResult, error) {
	subs, owners, err := r.messageSubmissions(msgs, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	res, err := r.Submit(ctx, subs...)
	if err != nil {
		return nil, err
	}
	out := make([][]QueueResult, len(msgs))
	for i, er := range res {
		m := owners[i]
		out[m] = append(out[m], QueueResult{ID: er.ID, Function: subs[i].Function, Duplicate: er.Duplicate})
	}
	return out, nil
}

// messageSubmissions turns messages into submissions, one per consuming function;
// owners[i] is the index of the message that submission i came from.
func (r *Runtime) messageSubmissions(msgs []fnhost.Message, now time.Time) ([]fnhost.Submission, []int, error) {
	var subs []fnhost.Submission
	var owners []int
	for i, m := range msgs {
		fns := r.cfg.Queues[m.Queue]
		if len(fns) == 0 {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownQueue, m.Queue)
		}
		data := bytes.TrimSpace(m.Data)
		if len(data) > 0 && !json.Valid(data) {
			return nil, nil, badMessage("message %d for queue %q: data is not valid JSON", i, m.Queue)
		}
		var runAt time.Time
		if m.Delay != "" {
			d, err := manifest.ParseDuration(m.Delay)
			if err != nil || d < 0 {
				return nil, nil, badMessage("message %d for queue %q: delay %q is not a duration such as 30s", i, m.Queue, m.Delay)
			}
			runAt = now.Add(d)
		}
		if m.NotBefore != nil && m.NotBefore.After(runAt) {
			runAt = m.NotBefore.UTC()
		}
		for _, fn := range fns {
			ev := fnhost.NewEvent("fnhost/queues/"+m.Queue, "fnhost.queue.message", m.Queue, json.RawMessage(data))
			subs = append(subs, fnhost.Submission{
				Function: fn, Trigger: "queue", Event: ev, DedupKey: m.DedupKey, Priority: m.Priority, RunAt: runAt,
			})
			owners = append(owners, i)
		}
	}
	return subs, owners, nil
}

// emitted returns the invocations for the queue messages a handler's output emits under
// fnhost.OutputMessagesKey. An output that is not a JSON object emits nothing.
func (r *Runtime) emitted(inv *fnhost.Invocation, output json.RawMessage) ([]store.NewInvocation, error) {
	if len(output) == 0 || output[0] != '{' || !bytes.Contains(output, []byte(fnhost.OutputMessagesKey)) {
		return nil, nil
	}
	var env map[string]json.RawMessage
	if json.Unmarshal(output, &env) != nil {
		return nil, nil
	}
	raw, ok := env[fnhost.OutputMessagesKey]
	if !ok {
		return nil, nil
	}
	var msgs []fnhost.Message
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, fmt.Errorf("the output's %s is not a list of messages: %w", fnhost.OutputMessagesKey, err)
	}
	now := time.Now().UTC()
	subs, _, err := r.messageSubmissions(msgs, now)
	if err != nil {
		return nil, fmt.Errorf("the output emits queue messages: %w", err)
	}
	var out []store.NewInvocation
	for _, s := range subs {
		ni, err := r.newInvocation(s, now)
		if err != nil {
			return nil, err
		}
		ni.ParentID = inv.ID
		out = r.expand(out, ni, []string{s.Function})
	}
	return out, nil
}
