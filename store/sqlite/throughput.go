package sqlite

import (
	"time"

	"github.com/fnhost/fnhost"
)

// throughputKey is one bucket of the throughput table: a minute (Unix microseconds of
// its start) and a function.
type throughputKey struct {
	minute   int64
	function string
}

// throughputCounts are the counts a transaction adds to one bucket.
type throughputCounts struct{ succeeded, failed, dead int64 }

// throughput gathers the attempts one write records, to be added to their buckets with
// one statement.
type throughput map[throughputKey]*throughputCounts

// add counts the attempt that completion c records for function.
func (t *throughput) add(function string, c *completion) {
	var d throughputCounts
	switch c.Outcome {
	case fnhost.OutcomeSucceeded:
		d.succeeded = 1
	case fnhost.OutcomeFailed, fnhost.OutcomeTimeout:
		d.failed = 1
	}
	if c.State == fnhost.StateFailed {
		d.dead = 1
	}
	if d == (throughputCounts{}) {
		return
	}
	if *t == nil {
		*t = make(throughput)
	}
	k := throughputKey{micros(c.Finished.Truncate(time.Minute)), function}
	cur := (*t)[k]
	if cur == nil {
		cur = &throughputCounts{}
		(*t)[k] = cur
	}
	cur.succeeded += d.succeeded
	cur.failed += d.failed
	cur.dead += d.dead
}

// throughputSQL adds to the buckets of n rows of (minute, function, succeeded, failed,
// dead).
var throughputSQL = sqlCache{build: func(n int) string {
	return `INSERT INTO throughput (minute, function, succeeded, failed, dead) VALUES ` + valuesSQL(n, 5) + `
		ON CONFLICT (minute, function) DO UPDATE SET succeeded = succeeded + excluded.succeeded,
			failed = failed + excluded.failed, dead = dead + excluded.dead`
}}

// addThroughput adds t to the throughput table, rowChunk buckets per statement.
func (w *writer) addThroughput(t throughput) error {
	args := make([]any, 0, min(len(t), rowChunk)*5)
	n := 0
	for k, c := range t {
		args = append(args, k.minute, k.function, c.succeeded, c.failed, c.dead)
		n++
		if n == rowChunk {
			if _, err := w.exec(throughputSQL.get(n), args...); err != nil {
				return err
			}
			args, n = args[:0], 0
		}
	}
	if n > 0 {
		if _, err := w.exec(throughputSQL.get(n), args...); err != nil {
			return err
		}
	}
	return nil
}
