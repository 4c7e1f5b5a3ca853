package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/triggers"
	"github.com/fnhost/fnhost/triggers/cron"
)

// cronSlots is how many slots the cron section fires: one a second.
const cronSlots = 10

// stamps records, per slot, when something happened, and turns them into delays.
type stamps struct {
	mu sync.Mutex
	at map[time.Time]time.Time
}

func (s *stamps) mark(slot time.Time, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[slot]; !ok {
		s.at[slot] = at
	}
}

func (s *stamps) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}

func (s *stamps) delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]time.Duration, 0, len(s.at))
	for slot, at := range s.at {
		out = append(out, at.Sub(slot))
	}
	slices.Sort(out)
	return out
}

// timedSubmitter notes when each slot's submission was persisted.
type timedSubmitter struct {
	triggers.Submitter
	done *stamps
}

func (t timedSubmitter) Submit(ctx context.Context, subs ...fnhost.Submission) ([]store.EnqueueResult, error) {
	res, err := t.Submitter.Submit(ctx, subs...)
	now := time.Now()
	if err == nil {
		for _, s := range subs {
			if slot, perr := time.Parse(time.RFC3339, s.Event.Subject); perr == nil {
				t.done.mark(slot, now)
			}
		}
	}
	return res, err
}

// benchCron fires a schedule with a seconds field ("* * * * * *", every second) on a
// real runtime and SQLite store, and measures how late each slot is: when its
// submission is persisted, and when its handler starts. The baseline is a bare Go
// timer set for the same whole seconds, in the same process, at the same time.
func benchCron(dir string) {
	submitted := &stamps{at: map[time.Time]time.Time{}}
	started := &stamps{at: map[time.Time]time.Time{}}
	handler := fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		now := time.Now()
		if slot, err := time.Parse(time.RFC3339, ev.Subject); err == nil {
			started.mark(slot, now)
		}
		return fnhost.Result{}, nil
	})
	rt, st := newRuntime(dir, 4, handler)
	defer st.Close()
	if err := rt.Start(context.Background()); err != nil {
		fatal(err)
	}
	tr, err := cron.New(triggers.Env{
		Function:  &manifest.Function{Name: "noop"},
		Trigger:   manifest.Trigger{Kind: "cron", Cron: &manifest.CronTrigger{Schedule: "* * * * * *"}},
		Submitter: timedSubmitter{Submitter: rt, done: submitted}, Store: st,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = tr.Run(ctx) }()

	// The baseline: a timer for each whole second, as the trigger sets one per slot.
	var timerLate []time.Duration
	bare := make(chan struct{})
	go func() {
		defer close(bare)
		for range cronSlots {
			slot := time.Now().Truncate(time.Second).Add(time.Second)
			time.Sleep(time.Until(slot))
			timerLate = append(timerLate, time.Since(slot))
		}
	}()

	deadline := time.Now().Add(cronSlots*time.Second + 5*time.Second)
	for started.len() < cronSlots && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	<-bare
	_ = rt.Stop(context.Background())

	sub, run := submitted.delays(), started.delays()
	if len(run) == 0 || len(sub) == 0 {
		fatal(fmt.Errorf("cron: no slot fired"))
	}
	slices.Sort(timerLate)
	pct := func(d []time.Duration) string {
		return fmt.Sprintf("p50 %s, p99 %s", ms(d[len(d)/2]), ms(d[len(d)*99/100]))
	}
	add(row{fmt.Sprintf("cron fire delay, submission persisted − slot (%d slots, every second)", len(sub)),
		pct(sub), pct(timerLate) + " bare timer", "", "p99 ≤ 20 ms"})
	add(row{fmt.Sprintf("cron fire delay, handler start − slot (%d slots, every second)", len(run)),
		pct(run), pct(timerLate) + " bare timer", "", "p99 ≤ 20 ms"})
}
