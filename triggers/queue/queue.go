// Package queue binds functions to fnhost's built-in durable queues. A message sent to a
// queue — through POST /api/v1/queues/{name}/messages, `fnhost enqueue`, or a handler's
// output under "fnhost_messages" — becomes one invocation of every function bound to
// that queue, persisted before the sender gets its answer, and run with the function's
// retry policy; a message whose invocation fails for good stays in the failed
// (dead-letter) set, from where it can be retried.
//
// The queue lives in the store with the invocations, so this trigger has nothing to poll:
// the host routes messages by the bindings it reads from the manifest.
package queue

import (
	"context"

	"github.com/fnhost/fnhost/triggers"
)

func init() {
	triggers.Register("queue", func(env triggers.Env) (triggers.Trigger, error) {
		return &Queue{Name: env.Trigger.Queue.Name}, nil
	})
}

// Queue is a function's binding to a named queue.
type Queue struct {
	Name string
}

var _ triggers.Trigger = (*Queue)(nil)

// Run waits for ctx: messages reach the function through the runtime.
func (q *Queue) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
