package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// TestConcurrentSingleEnqueues has many goroutines enqueue one invocation each, in
// shared transactions, some of them re-sending an id already stored or sent by another
// goroutine at the same time, beside Enqueues that are not plain: every duplicate is
// reported, every invocation is stored once, with its own event.
func TestConcurrentSingleEnqueues(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})

	event := func(tag string) json.RawMessage { return json.RawMessage(`{"n":"` + tag + `"}`) }
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const stored = 20
	pre := make([]store.NewInvocation, stored)
	for i := range pre {
		pre[i] = store.NewInvocation{ID: fnhost.NewIDAt(base), Function: "f", CreatedAt: base,
			Event: event(fmt.Sprintf("pre-%d", i))}
	}
	if _, err := s.Enqueue(ctx, pre); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	// want is what one goroutine's Enqueue must report and leave stored.
	type want struct {
		invs  []store.NewInvocation
		dup   bool // every row a duplicate of a stored row
		twin  int  // > 0: races with goroutine twin-1 for the same new id
		event string
	}
	const n = 300
	cases := make([]want, n)
	for i := range n {
		id := fnhost.NewIDAt(base.Add(time.Second))
		tag := fmt.Sprint(i)
		inv := store.NewInvocation{ID: id, Function: "f", CreatedAt: base, Event: event(tag), MaxAttempts: 2}
		c := want{event: tag}
		switch i % 10 {
		case 0, 5: // re-sent: already stored
			k := i % stored
			inv.ID, c.dup, c.event = pre[k].ID, true, fmt.Sprintf("pre-%d", k)
		case 2: // the same new id as the previous goroutine
			inv.ID, c.twin = cases[i-1].invs[0].ID, i
			c.event = ""
		case 3: // several rows in one call
			more := inv
			more.ID, more.Event = fnhost.NewIDAt(base), event(tag+"b")
			c.invs = []store.NewInvocation{inv, more}
		case 7: // not plain: a dedup key
			inv.DedupKey = "k" + tag
		}
		if c.invs == nil {
			c.invs = []store.NewInvocation{inv}
		}
		cases[i] = c
	}

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
			if len(res) != len(c.invs) {
				t.Fatalf("round %d, call %d: %d results for %d invocations", round, i, len(res), len(c.invs))
			}
			for k, r := range res {
				if r.ID != c.invs[k].ID {
					t.Errorf("round %d, call %d: result %d is %s, want %s", round, i, k, r.ID, c.invs[k].ID)
				}
				wantDup := c.dup || round == 1
				if c.twin > 0 && round == 0 {
					// Exactly one of the twins stores the id.
					if r.Duplicate == results[c.twin-1][0].Duplicate {
						t.Errorf("call %d and %d, same id: duplicate %t and %t", c.twin-1, i,
							results[c.twin-1][0].Duplicate, r.Duplicate)
					}
					continue
				}
				if c.twin == 0 && i+1 < n && cases[i+1].twin > 0 && round == 0 {
					continue // checked with its twin
				}
				if r.Duplicate != wantDup {
					t.Errorf("round %d, call %d: duplicate %t, want %t", round, i, r.Duplicate, wantDup)
				}
			}
		}
	}

	// Every id is stored once, with the event of whoever stored it.
	ids := map[string]bool{}
	for i := range pre {
		ids[pre[i].ID] = true
	}
	for i, c := range cases {
		for k, inv := range c.invs {
			ids[inv.ID] = true
			got, err := s.Get(ctx, inv.ID)
			if err != nil {
				t.Fatalf("call %d: Get %s: %v", i, inv.ID, err)
			}
			ev := string(got.Event)
			twin := -1 // the other call with the same id
			if c.twin > 0 {
				twin = c.twin - 1
			} else if i+1 < n && cases[i+1].twin > 0 {
				twin = i + 1
			}
			switch {
			case twin >= 0:
				storer := i
				if first[i][0].Duplicate {
					storer = twin
				}
				if want := event(fmt.Sprint(storer)); ev != string(want) {
					t.Errorf("call %d: stored event %s, want %s, that of the call that stored it", i, ev, want)
				}
			case k == 0 && ev != string(event(c.event)):
				t.Errorf("call %d: stored event %s, want %s", i, ev, event(c.event))
			case got.State != fnhost.StatePending || got.Function != "f":
				t.Errorf("call %d: stored %s in state %s", i, got.Function, got.State)
			}
		}
	}
	var count int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM invocations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != len(ids) {
		t.Errorf("%d invocations stored, want %d", count, len(ids))
	}
}
