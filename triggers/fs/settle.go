package fs

import (
	"container/heap"
	"context"
	"encoding/json"
	"time"

	"github.com/fnhost/fnhost"
)

// entry is a file waiting to settle, or to be submitted again after a failure.
type entry struct {
	rel string
	// seen is the last observation; the file is ready when it is still the same at due.
	seen obs
	due  time.Time
	// failures counts the submissions that failed in a row.
	failures int
	// queued is set while the entry has a live item in the due heap, at queuedAt;
	// done once it left pending.
	queued, done bool
	queuedAt     time.Time
}

// touch marks rel pending after a notification that arrived at at. changed says
// that the notification itself reports new content (a create or a write): the settle
// time starts again even when size and mtime look the same (coarse timestamps).
func (t *Trigger) touch(rel string, changed bool, at time.Time) {
	o := t.observe(rel)
	e := t.pending[rel]
	if e == nil {
		t.addPending(rel, o, at)
		return
	}
	if changed || o != e.seen {
		e.seen = o
		// The settle time runs from the latest change; it never shortens a wait.
		if due := at.Add(t.settle); due.After(e.due) {
			e.due = due
		}
		t.enqueue(e)
	}
}

// addPending makes rel pending with the observation o, due settle after at.
func (t *Trigger) addPending(rel string, o obs, at time.Time) {
	e := &entry{rel: rel, seen: o, due: at.Add(t.settle)}
	t.pending[rel] = e
	t.enqueue(e)
}

// enqueue makes sure e comes up in the due heap no later than e.due. An item whose
// time is not the entry's queuedAt is stale and skipped when it comes up.
func (t *Trigger) enqueue(e *entry) {
	if e.done || (e.queued && !e.due.Before(e.queuedAt)) {
		return
	}
	e.queued, e.queuedAt = true, e.due
	heap.Push(&t.due, dueItem{at: e.due, e: e})
}

func (t *Trigger) finish(e *entry) {
	e.done = true
	if t.pending[e.rel] == e {
		delete(t.pending, e.rel)
	}
}

// retry puts entries back after a failed lookup or submission, with a growing delay.
func (t *Trigger) retry(es []*entry) {
	now := time.Now()
	for _, e := range es {
		e.failures++
		d := min(500*time.Millisecond<<min(e.failures-1, 6), maxRetryDelay)
		e.due = now.Add(d)
		t.enqueue(e)
	}
}

// flush looks at every pending file that is due: one that changed since it was last
// seen settles again, one that did not is submitted.
func (t *Trigger) flush(ctx context.Context) {
	now := time.Now()
	var ready []*entry
	for {
		at, ok := t.due.next()
		if !ok || at.After(now) {
			break
		}
		it := heap.Pop(&t.due).(dueItem)
		e := it.e
		if e.done || !e.queued || !it.at.Equal(e.queuedAt) {
			continue
		}
		e.queued = false
		if e.due.After(now) {
			t.enqueue(e)
			continue
		}
		o := t.observe(e.rel)
		if o.kind == unknown {
			t.retry([]*entry{e})
			continue
		}
		if o != e.seen {
			e.seen, e.due = o, now.Add(t.settle)
			t.enqueue(e)
			continue
		}
		// Settled. What is accounted for needs no look at the store.
		k, isKnown := t.known[e.rel]
		if (o.kind == file && isKnown && k == o.version()) || (o.kind == none && isKnown && k == deletedVersion) {
			t.finish(e)
			continue
		}
		ready = append(ready, e)
	}
	for len(ready) > 0 && ctx.Err() == nil {
		n := min(len(ready), submitBatch)
		t.submit(ctx, ready[:n])
		ready = ready[n:]
	}
}

// submit decides the op of each settled file from its receipt and what this process
// knows, and submits those whose op is in events, in one call.
func (t *Trigger) submit(ctx context.Context, batch []*entry) {
	// A file is checked once more, with every symbolic link on its way resolved:
	// nothing outside the root is submitted, whatever was swapped in meanwhile.
	checked := batch[:0]
	for _, e := range batch {
		if e.seen.kind == file {
			in, err := t.contained(e.rel)
			switch {
			case err != nil && !gone(err):
				t.retry([]*entry{e})
				continue
			case err != nil:
				e.seen = obs{}
			case !in:
				t.log.Debug("fs: file leads outside the watched directory; ignored", "path", e.rel)
				e.seen = obs{}
			}
		}
		checked = append(checked, e)
	}
	batch = checked
	if len(batch) == 0 {
		return
	}
	keys := make([]string, len(batch))
	for i, e := range batch {
		keys[i] = t.key(e.rel)
	}
	receipts, err := t.st.Receipts(ctx, t.fn, keys)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("fs: cannot read receipts; the files stay pending", "path", t.root, "files", len(batch), "err", err)
			t.retry(batch)
		}
		return
	}

	var (
		subs      []fnhost.Submission
		subbed    []*entry
		versions  []string
		subOps    []string
		forget    []string
		forgotten []*entry
	)
	for i, e := range batch {
		r, has := receipts[keys[i]]
		k, isKnown := t.known[e.rel]
		if e.seen.kind == file {
			v := e.seen.version()
			if has && r == v {
				t.known[e.rel] = v
				t.finish(e)
				continue
			}
			// created when nothing was there as far as anyone knows, modified when
			// another version was.
			op := OpModified
			switch {
			case isKnown && k == deletedVersion, has && r == deletedVersion, !has && !isKnown:
				op = OpCreated
			}
			if !t.ops[op] {
				t.known[e.rel] = v
				t.finish(e)
				continue
			}
			subs = append(subs, t.submission(e.rel, op, e.seen, v))
			subbed, versions, subOps = append(subbed, e), append(versions, v), append(subOps, op)
			continue
		}
		// Gone. What was there last: the receipt, or the baseline of this process.
		last, hasReceipt := "", false
		if has && r != deletedVersion {
			if _, ok := parseVersion(r); ok {
				last, hasReceipt = r, true
			}
		}
		if last == "" && isKnown && k != deletedVersion {
			last = k
		}
		if last == "" || (isKnown && k == deletedVersion) {
			if isKnown && k != deletedVersion {
				delete(t.known, e.rel)
			}
			t.finish(e)
			continue
		}
		if t.ops[OpDeleted] {
			o, _ := parseVersion(last)
			subs = append(subs, t.submission(e.rel, OpDeleted, o, deletedVersion))
			subbed, versions, subOps = append(subbed, e), append(versions, deletedVersion), append(subOps, OpDeleted)
			continue
		}
		if hasReceipt {
			// Not reported, but forgotten: a file that comes back is new again.
			forget, forgotten = append(forget, keys[i]), append(forgotten, e)
			continue
		}
		delete(t.known, e.rel)
		t.finish(e)
	}

	if len(forget) > 0 {
		if err := t.st.ForgetReceipts(ctx, t.fn, forget); err != nil {
			if ctx.Err() == nil {
				t.log.Warn("fs: cannot forget the receipts of deleted files; will try again", "path", t.root, "err", err)
				t.retry(forgotten)
			}
		} else {
			for _, e := range forgotten {
				delete(t.known, e.rel)
				t.finish(e)
			}
		}
	}
	if len(subs) == 0 {
		return
	}
	res, err := t.sub.Submit(ctx, subs...)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("fs: cannot submit; the files stay pending and are tried again", "path", t.root, "files", len(subs), "err", err)
			t.retry(subbed)
		}
		return
	}
	for i, e := range subbed {
		t.known[e.rel] = versions[i]
		t.finish(e)
		op := subOps[i]
		if i < len(res) && res[i].Duplicate {
			t.log.Debug("fs: already submitted", "path", e.rel, "op", op, "id", res[i].ID)
			continue
		}
		t.counter.WithLabelValues(t.fn, op).Inc()
		if i < len(res) {
			t.log.Debug("fs: submitted", "path", e.rel, "op", op, "id", res[i].ID)
		}
	}
}

// eventData is the data of an fs event.
type eventData struct {
	Path    string `json:"path"`
	AbsPath string `json:"abs_path"`
	Size    int64  `json:"size"`
	MTime   string `json:"mtime,omitempty"`
	Op      string `json:"op"`
}

func (t *Trigger) submission(rel, op string, o obs, version string) fnhost.Submission {
	d := eventData{Path: rel, AbsPath: t.abs(rel), Size: o.size, Op: op}
	if o.kind == file {
		d.MTime = time.Unix(0, o.mtime).UTC().Format(time.RFC3339Nano)
	}
	data, _ := json.Marshal(d)
	return fnhost.Submission{
		Function:       t.fn,
		Trigger:        Kind,
		Event:          fnhost.NewEvent(t.source, "fnhost.fs."+op, rel, data),
		ReceiptKey:     t.key(rel),
		ReceiptVersion: version,
	}
}

// dueItem is an entry in the due heap, ordered by at. An entry has at most one item;
// when its due time moved later, the item is pushed again when it comes up.
type dueItem struct {
	at time.Time
	e  *entry
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = dueItem{}
	*h = old[:len(old)-1]
	return it
}

// next is the earliest due time in the heap.
func (h dueHeap) next() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].at, true
}
