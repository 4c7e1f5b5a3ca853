package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// dump returns every row of the invocations and attempts tables, in id order, as text.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{`SELECT * FROM invocations ORDER BY id`,
		`SELECT * FROM attempts ORDER BY invocation_id, number`} {
		rs, err := s.rdb.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rs.Columns()
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rs.Next() {
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%v ", cols[i], v)
			}
			b.WriteByte('\n')
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rs.Close()
	}
	return b.String()
}

// TestConcurrentFinishedEnqueues has many goroutines store one finished invocation each,
// in shared transactions, some of them re-sending an id already stored or sent by
// another goroutine at the same time, some finishing a parent whose children are
// already awaiting it, beside Enqueues that are not simple finished ones (plain, dedup
// key, spawn, then event, running): every duplicate is reported, and the tables end up
// row for row as the same Enqueues made one at a time leave them.
func TestConcurrentFinishedEnqueues(t *testing.T) {
	ctx := context.Background()
	s, ref := openTest(t, Options{}), openTest(t, Options{})

	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	event := func(tag string) json.RawMessage { return json.RawMessage(`{"n":"` + tag + `"}`) }
	output := func(tag string) json.RawMessage { return json.RawMessage(`{"out":"` + tag + `"}`) }
	ran := func(tag string, created time.Time) store.NewInvocation {
		return store.NewInvocation{ID: fnhost.NewIDAt(created), Function: "sync", Trigger: "http",
			Event: event(tag), MaxAttempts: 3, CreatedAt: created, Owner: "host-1",
			LeaseUntil: created.Add(time.Minute)}
	}
	succeeded := func(tag string, created time.Time) *store.Completion {
		return &store.Completion{State: fnhost.StateSucceeded, Output: output(tag),
			Attempt: fnhost.Attempt{StartedAt: created.Add(time.Millisecond), FinishedAt: created.Add(5 * time.Millisecond),
				Outcome: fnhost.OutcomeSucceeded, Log: "log " + tag, Owner: "host-1"}}
	}
	both := func(invs ...store.NewInvocation) {
		t.Helper()
		for _, st := range []*Store{s, ref} {
			if _, err := st.Enqueue(ctx, invs); err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
		}
	}

	const stored = 20
	pre := make([]store.NewInvocation, stored)
	for i := range pre {
		pre[i] = ran(fmt.Sprintf("pre-%d", i), at(0))
		pre[i].Completion = succeeded(fmt.Sprintf("pre-%d", i), at(0))
	}
	both(pre...)

	type want struct {
		invs   []store.NewInvocation
		dup    bool // a duplicate of a stored row
		twin   int  // > 0: races with call twin-1 for the same new id
		simple bool
		state  fnhost.State
		output string // the tag of the output stored, when simple
	}
	const n = 300
	cases := make([]want, n)
	var children []store.NewInvocation // awaiting children stored before their parent
	for i := range n {
		tag := fmt.Sprint(i)
		created := at(time.Duration(i+1) * time.Second)
		inv := ran(tag, created)
		inv.Completion = succeeded(tag, created)
		c := want{simple: true, state: fnhost.StateSucceeded, output: tag}
		// Re-sent ids come in one decade of four, awaited parents in the next one: a
		// run of simple finished calls (from slot 8 of a decade to slot 5 of the
		// next) holds some, one, or none of them.
		kind := i % 10
		switch d := i / 10 % 4; {
		case (kind == 0 || kind == 2 || kind == 5) && d != 0, kind == 8 && d != 1:
			kind = 1
		}
		switch kind {
		case 0, 5: // re-sent: already stored
			k := i % stored
			inv, c.dup = pre[k], true
			c.output = fmt.Sprintf("pre-%d", k)
		case 1: // the attempt's start, outcome and owner left to the store, at times
			if i%2 == 0 {
				inv.Completion.Attempt = fnhost.Attempt{FinishedAt: created.Add(7 * time.Millisecond)}
			}
		case 2: // the same new id as the previous call, another output
			inv.ID, c.twin = cases[i-1].invs[0].ID, i
		case 3: // failed
			inv.Completion = &store.Completion{State: fnhost.StateFailed, Error: "boom " + tag,
				Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: created.Add(3 * time.Millisecond),
					Outcome: fnhost.OutcomeFailed, Error: "attempt " + tag, Log: "trace", LogTruncated: true}}
			c.state, c.output = fnhost.StateFailed, ""
		case 4: // a retry later, or at once
			inv.Completion = &store.Completion{State: fnhost.StateScheduled, RunAt: created.Add(time.Hour),
				Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: created.Add(time.Millisecond),
					Outcome: fnhost.OutcomeFailed, Error: "again"}}
			c.state, c.output = fnhost.StateScheduled, ""
			if i%20 == 14 {
				inv.Completion.RunAt = time.Time{}
				c.state = fnhost.StatePending
			}
		case 6: // not simple: a dedup key
			inv.DedupKey = "k" + tag
			c.simple = false
		case 7: // not simple: plain
			inv = store.NewInvocation{ID: fnhost.NewIDAt(created), Function: "f", CreatedAt: created, Event: event(tag)}
			c.simple, c.state = false, fnhost.StatePending
		case 8: // simple, but children stored before it await it
			then := store.NewInvocation{ID: fnhost.NewIDAt(created), Function: "then", CreatedAt: created,
				Awaiting: true, ParentID: inv.ID, Continuation: fnhost.ContinueThen}
			onFailure := then
			onFailure.ID, onFailure.Function, onFailure.Continuation = fnhost.NewIDAt(created), "alert", fnhost.ContinueOnFailure
			children = append(children, then, onFailure)
			if i%20 == 8 {
				inv.Completion = &store.Completion{State: fnhost.StateCancelled, Error: "stop",
					Attempt: fnhost.Attempt{StartedAt: created, FinishedAt: created.Add(time.Millisecond)}}
				c.state, c.output = fnhost.StateCancelled, ""
			}
		case 9: // not simple: a spawn, a then event, or no completion
			c.simple = false
			switch i % 30 {
			case 9:
				inv.Completion.Spawn = []store.NewInvocation{{ID: fnhost.NewIDAt(created), Function: "spawned", CreatedAt: created}}
			case 19:
				inv.Completion.ThenEvent = event("then " + tag)
				children = append(children, store.NewInvocation{ID: fnhost.NewIDAt(created), Function: "then",
					CreatedAt: created, Awaiting: true, ParentID: inv.ID, Continuation: fnhost.ContinueThen})
			default:
				inv.Completion = nil
				c.state = fnhost.StateRunning
			}
		}
		c.invs = []store.NewInvocation{inv}
		cases[i] = c
	}
	both(children...)

	var first [][]store.EnqueueResult // the results of round 0
	calls := make([][]store.NewInvocation, n)
	for i, c := range cases {
		calls[i] = c.invs
	}
	for round := range 2 {
		// Round 0 holds the writer so that the calls queue up and share few
		// transactions; round 1 sends the same calls again, unheld: all duplicates.
		results := enqueueAll(t, s, calls, round == 0)
		if round == 0 {
			first = results
		}
		for i, c := range cases {
			res := results[i]
			if len(res) != 1 || res[0].ID != c.invs[0].ID {
				t.Fatalf("round %d, call %d: results %+v, want one for %s", round, i, res, c.invs[0].ID)
			}
			switch {
			case c.twin > 0 && round == 0:
				if res[0].Duplicate == results[c.twin-1][0].Duplicate {
					t.Errorf("call %d and %d, same id: duplicate %t and %t", c.twin-1, i,
						results[c.twin-1][0].Duplicate, res[0].Duplicate)
				}
			case i+1 < n && cases[i+1].twin > 0 && round == 0:
				// checked with its twin
			case res[0].Duplicate != (c.dup || round == 1):
				t.Errorf("round %d, call %d: duplicate %t, want %t", round, i, res[0].Duplicate, c.dup || round == 1)
			}
		}
	}

	// The reference store takes the same calls one at a time, the twin that won first.
	for i, c := range cases {
		if c.twin > 0 {
			continue // enqueued with its twin
		}
		calls := [][]store.NewInvocation{c.invs}
		if i+1 < n && cases[i+1].twin > 0 {
			calls = append(calls, cases[i+1].invs)
			if first[i][0].Duplicate {
				calls[0], calls[1] = calls[1], calls[0]
			}
		}
		for _, invs := range calls {
			if _, err := ref.Enqueue(ctx, invs); err != nil {
				t.Fatalf("reference Enqueue: %v", err)
			}
		}
	}
	if got, want := dump(t, s), dump(t, ref); got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for k := range min(len(gl), len(wl)) {
			if gl[k] != wl[k] {
				t.Fatalf("row %d differs from the one-at-a-time store:\n got %s\nwant %s", k, gl[k], wl[k])
			}
		}
		t.Fatalf("%d rows, want %d as the one-at-a-time store", len(gl), len(wl))
	}

	// And, explicitly, the simple ones: state, output, one attempt.
	for i, c := range cases {
		if !c.simple {
			continue
		}
		got, err := s.Get(ctx, c.invs[0].ID)
		if err != nil {
			t.Fatalf("call %d: Get: %v", i, err)
		}
		wantOut := c.output
		if c.twin > 0 && !first[i][0].Duplicate {
			wantOut = fmt.Sprint(i)
		} else if c.twin > 0 {
			wantOut = fmt.Sprint(i - 1)
		} else if i+1 < n && cases[i+1].twin > 0 && first[i][0].Duplicate {
			wantOut = fmt.Sprint(i + 1)
		}
		if got.State != c.state || got.Attempt != 1 || len(got.Attempts) != 1 || got.Attempts[0].Number != 1 {
			t.Errorf("call %d: state %s, attempt %d, %d attempts; want %s, 1, 1", i, got.State, got.Attempt, len(got.Attempts), c.state)
		}
		if wantOut != "" && string(got.Output) != string(output(wantOut)) {
			t.Errorf("call %d: output %s, want %s", i, got.Output, output(wantOut))
		}
		if got.LeaseOwner != "" || got.LeaseUntil != nil {
			t.Errorf("call %d: still leased by %q", i, got.LeaseOwner)
		}
	}
	for _, ch := range children {
		got, err := s.Get(ctx, ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == fnhost.StateAwaiting {
			t.Errorf("child %s of %s still awaiting its finished parent", ch.ID, ch.ParentID)
		}
	}
}

// TestFinishedGroup runs the combined insert of simple finished Enqueues directly: it
// stores a group whole, and leaves nothing of a group with a stored id or with a
// terminal invocation whose children await it.
func TestFinishedGroup(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	newReq := func(state fnhost.State) *request {
		t.Helper()
		inv := store.NewInvocation{ID: fnhost.NewIDAt(base), Function: "sync", CreatedAt: base, Owner: "h",
			Completion: &store.Completion{State: state, Output: json.RawMessage(`{"ok":true}`), RunAt: base.Add(time.Hour),
				Attempt: fnhost.Attempt{FinishedAt: base.Add(time.Second)}}}
		invs := []store.NewInvocation{inv}
		if !isSimpleFinished(invs) {
			t.Fatal("not a simple finished Enqueue")
		}
		rows, err := prepareNew(invs)
		if err != nil {
			t.Fatal(err)
		}
		return &request{plain: rows, res: make([]store.EnqueueResult, 1), finished: true}
	}
	group := func(reqs ...*request) (ok bool) {
		t.Helper()
		if err := s.do(ctx, 1, func(w *writer) error {
			var err error
			ok, err = w.insertPlain(reqs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	count := func() (n int) {
		t.Helper()
		if err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM invocations) + (SELECT count(*) FROM attempts)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	a, b := newReq(fnhost.StateSucceeded), newReq(fnhost.StateFailed)
	if !group(a, b) {
		t.Fatal("a clean group was not stored")
	}
	for _, r := range []*request{a, b} {
		if r.res[0] != (store.EnqueueResult{ID: r.plain[0].id}) {
			t.Errorf("result %+v, want %s stored", r.res[0], r.plain[0].id)
		}
		got, err := s.Get(ctx, r.plain[0].id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Attempts) != 1 || !got.Attempts[0].StartedAt.Equal(base) || got.Attempts[0].Owner != "h" {
			t.Errorf("attempts %+v, want one started at creation by h", got.Attempts)
		}
	}
	if n := count(); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}

	// A stored id: nothing of the group is left.
	c, d := newReq(fnhost.StateSucceeded), newReq(fnhost.StateSucceeded)
	d.plain[0].args[0], d.plain[0].id = a.plain[0].id, a.plain[0].id
	if group(c, d) {
		t.Fatal("a group with a stored id was stored")
	}
	if n := count(); n != 4 {
		t.Fatalf("%d rows after a group with a stored id, want 4", n)
	}

	// Children already await one of the group's invocations.
	e, f, g := newReq(fnhost.StateSucceeded), newReq(fnhost.StateCancelled), newReq(fnhost.StateScheduled)
	child := store.NewInvocation{ID: fnhost.NewIDAt(base), Function: "then", CreatedAt: base, Awaiting: true,
		ParentID: f.plain[0].id, Continuation: fnhost.ContinueThen}
	if _, err := s.Enqueue(ctx, []store.NewInvocation{child}); err != nil {
		t.Fatal(err)
	}
	if group(e, f) {
		t.Fatal("a group with awaited invocations was stored")
	}
	if n := count(); n != 5 {
		t.Fatalf("%d rows after a group with awaited invocations, want 5", n)
	}
	// A retry leaves its children awaiting: nothing to do for them.
	child.ID, child.ParentID = fnhost.NewIDAt(base), g.plain[0].id
	if _, err := s.Enqueue(ctx, []store.NewInvocation{child}); err != nil {
		t.Fatal(err)
	}
	if !group(e, g) {
		t.Fatal("a group with an awaited retry was not stored")
	}
	if n := count(); n != 10 {
		t.Fatalf("%d rows, want 10", n)
	}
}
