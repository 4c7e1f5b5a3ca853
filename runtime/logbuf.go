package runtime

import (
	"sync"
)

// truncationMark ends a log that hit the cap, so that nobody mistakes it for the whole.
const truncationMark = "\n…[log truncated: the attempt wrote more than the cap]\n"

// capBuffer keeps the first max bytes written to it and counts the rest. It is safe for
// concurrent writers (an exec handler's stderr and a builtin's log lines).
type capBuffer struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
}

func newCapBuffer(max int) *capBuffer { return &capBuffer{max: max} }

// Write never fails: bytes past the cap are dropped and remembered as truncation.
func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - len(b.buf)
	if room >= len(p) {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		b.buf = append(b.buf, p[:room]...)
	}
	b.truncated = true
	return len(p), nil
}

// result returns the captured log, with the truncation mark when bytes were dropped.
func (b *capBuffer) result() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.truncated {
		return string(b.buf) + truncationMark, true
	}
	return string(b.buf), false
}
