// Package cron is the cron trigger: it fires a function on a schedule.
//
//	triggers:
//	  - cron: {schedule: "0 2 * * *", timezone: Europe/Rome, missed: one, overlap: skip}
//
// The schedule is robfig/cron/v3 syntax, as the manifest validates it: 5 fields, 6 with
// leading seconds, or a descriptor (@hourly, @daily, @every 30s). Slots are computed in
// timezone (an IANA name), UTC when it is not set, whatever the host's zone; see
// schedule for daylight-saving changes and for how @every is aligned.
//
// # Exactly once
//
// Every slot is submitted with a dedup key made of the slot and a short hash of the
// schedule and time zone ("cron:<hash>:<slot>"), so a slot makes at most one invocation:
// across restarts and across instances that share a database, and for two cron
// triggers of one function as long as their schedules differ. An on-time slot's
// invocation id is derived from the same key, so that a host that stopped between
// submitting a slot and recording it finds the invocation on its next start.
//
// Progress is kept in the store's trigger state under "cron/<function>/<hash>": the last
// slot handled (fired or deliberately skipped) and the last invocation submitted.
// Instances advance it with a compare-and-put and reload it when another one was
// first. Changing the schedule or the time zone changes the hash: the trigger then
// starts afresh.
//
// # Missed slots
//
// Slots that passed while no host was watching the schedule are missed: the host was
// down or suspended, or a slot could not be submitted before the next one came due
// (or within a minute). They are handled by missed:
//   - one (default): one invocation for the most recent missed slot, with past_due
//     true and missed_slots the number of slots missed;
//   - all: one invocation per missed slot, each past_due, at most the 1000 most recent;
//     older ones are dropped with a log line;
//   - skip: none; a log line says what was skipped.
//
// On the very first start (no state stored) nothing before the start is caught up.
//
// # Overlap
//
// overlap decides what happens when a slot comes while the invocation submitted last is
// not finished (scheduled, pending, running or awaiting):
//   - skip (default): the slot is not submitted; a log line records it and the state
//     moves past it;
//   - allow: it is submitted anyway, and may run beside the previous one;
//   - queue: it is submitted anyway; the host runs a function with overlap: queue one
//     invocation at a time (it caps such a function at concurrency 1 when it sets no
//     cap), so the invocations run one after the other. This trigger relies on that.
//
// Missed slots caught up together are submitted together, whatever overlap says; only
// an unfinished invocation from before the gap makes overlap: skip skip them.
//
// # Event
//
// The event is a CloudEvent with source fnhost/cron/<function>, type fnhost.cron.tick,
// subject and time the slot, and data
//
//	{"schedule": "0 2 * * *", "timezone": "Europe/Rome", "slot": "2025-03-30T01:00:00Z",
//	 "past_due": false}
//
// with slot in UTC, and "missed_slots": n when catching up.
package cron

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/triggers"
)

const (
	// MaxCatchUp caps the invocations of one catch-up with missed: all.
	MaxCatchUp = 1000
	// lateLimit is how late a slot that came due while the trigger was running may
	// fire and still count as on time. Beyond it, or when the slot after it is due
	// too, it counts as missed.
	lateLimit = time.Minute
	// maxSleep bounds one sleep, so that a clock step or a suspended machine is noticed.
	maxSleep = 30 * time.Second
	// TriggerName is the trigger of the invocations this package submits.
	TriggerName = "cron"
	// EventType is the CloudEvents type of a tick.
	EventType = "fnhost.cron.tick"
)

func init() {
	triggers.Register("cron", func(env triggers.Env) (triggers.Trigger, error) { return New(env) })
}

// Trigger fires one function on one schedule.
type Trigger struct {
	function string
	spec     string
	tz       string
	missed   string
	overlap  string
	sched    *schedule
	sub      triggers.Submitter
	store    store.Store
	log      *slog.Logger
	// key is the state key; prefix starts every dedup key of this trigger.
	key, prefix string
}

var (
	_ triggers.Trigger   = (*Trigger)(nil)
	_ triggers.NextFirer = (*Trigger)(nil)
)

// New builds the cron trigger of env.Function described by env.Trigger.Cron.
func New(env triggers.Env) (*Trigger, error) {
	name := "?"
	if env.Function != nil {
		name = env.Function.Name
	}
	fail := func(format string, args ...any) (*Trigger, error) {
		return nil, fmt.Errorf("function %q: cron trigger: %s", name, fmt.Sprintf(format, args...))
	}
	ct := env.Trigger.Cron
	switch {
	case env.Function == nil:
		return fail("no function")
	case ct == nil:
		return fail("no cron settings")
	case env.Submitter == nil:
		return fail("no submitter")
	case env.Store == nil:
		return fail("no store: the cron trigger keeps its progress there")
	}
	tz := ct.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return fail("timezone: %v", err)
	}
	sched, err := newSchedule(ct.Schedule, loc)
	if err != nil {
		return fail("schedule %q: %v", ct.Schedule, err)
	}
	missed, overlap := ct.Missed, ct.Overlap
	if missed == "" {
		missed = "one"
	}
	if overlap == "" {
		overlap = "skip"
	}
	if missed != "one" && missed != "all" && missed != "skip" {
		return fail("missed: invalid value %q (want one, all or skip)", missed)
	}
	if overlap != "skip" && overlap != "allow" && overlap != "queue" {
		return fail("overlap: invalid value %q (want skip, allow or queue)", overlap)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	registerMetrics(env.Registerer, log)
	initMetrics(name)
	h := scheduleHash(ct.Schedule, tz)
	return &Trigger{
		function: name, spec: strings.TrimSpace(ct.Schedule), tz: tz, missed: missed, overlap: overlap,
		sched: sched, sub: env.Submitter, store: env.Store, log: log,
		key: "cron/" + name + "/" + h, prefix: "cron:" + h + ":",
	}, nil
}

// scheduleHash tells two cron triggers of one function apart.
func scheduleHash(spec, tz string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(spec) + "\x00" + tz))
	return hex.EncodeToString(sum[:4])
}

// NextFire returns the next slot after now, in the trigger's time zone.
func (c *Trigger) NextFire() (time.Time, bool) {
	t := c.sched.next(time.Now())
	return t, !t.IsZero()
}

// Run fires the slots until ctx is done.
func (c *Trigger) Run(ctx context.Context) error {
	var (
		st     state
		loaded bool
		// watched is when the trigger last looked at the schedule: a slot after it
		// came due while the trigger was running, and fires on time unless it is late
		// by more than lateLimit or the slot after it is due too. Slots before it
		// passed while no one watched: they are missed.
		watched time.Time
		retry   backoff
	)
	for ctx.Err() == nil {
		var err error
		if !loaded {
			if st, err = c.loadState(ctx); err == nil {
				loaded = true
				continue
			}
		} else {
			now := time.Now()
			next := c.sched.next(st.LastSlot)
			switch {
			case next.IsZero():
				c.log.Warn("the cron schedule has no slot in the next five years; the trigger is idle", "schedule", c.spec, "after", st.LastSlot)
				<-ctx.Done()
				return nil
			case next.After(now):
				watched = now
				if !sleepUntil(ctx, next) {
					return nil
				}
				continue
			case !watched.IsZero() && next.After(watched) && now.Sub(next) <= lateLimit && c.sched.next(next).After(now):
				if err = c.fire(ctx, &st, next); err == nil {
					watched = now
				}
			default:
				if err = c.catchUp(ctx, &st, now); err == nil {
					watched = now
				}
			}
		}
		if err == nil {
			retry.reset()
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		d := retry.next()
		c.log.Error("cron trigger: store or submit failed; retrying", "err", err, "in", d)
		if !sleepFor(ctx, d) {
			return nil
		}
	}
	return nil
}

// fire submits the slot that was waited for.
func (c *Trigger) fire(ctx context.Context, st *state, slot time.Time) error {
	if busy, err := c.busy(ctx, st.LastID); err != nil {
		return err
	} else if busy {
		c.log.Info("cron slot skipped: the previous invocation has not finished (overlap: skip)",
			"slot", fmtSlot(slot), "previous", st.LastID)
		count(c.function, "skipped_overlap", 1)
		return c.advance(ctx, st, slot, st.LastID)
	}
	sub := c.submission(slot, false, 0)
	sub.ID = c.slotID(slot)
	res, err := c.sub.Submit(ctx, sub)
	if err != nil {
		return fmt.Errorf("submit slot %s: %w", fmtSlot(slot), err)
	}
	if res[0].Duplicate {
		count(c.function, "duplicate", 1)
	} else {
		count(c.function, "fired", 1)
	}
	return c.advanceAfterSubmit(ctx, st, slot, res[0].ID)
}

// catchUp handles the slots in (last slot, now] that were not fired on time.
func (c *Trigger) catchUp(ctx context.Context, st *state, now time.Time) error {
	// Start from the stored state, not from this instance's view of it.
	fresh, err := c.loadState(ctx)
	if err != nil {
		return err
	}
	*st = fresh
	last, lastID, err := c.reconcile(ctx, st.LastSlot, st.LastID)
	if err != nil {
		return err
	}
	keep := 1
	if c.missed == "all" {
		keep = MaxCatchUp
	}
	n, tail := c.sched.span(last, now, keep)
	if n == 0 {
		if !last.Equal(st.LastSlot) {
			return c.advance(ctx, st, last, lastID)
		}
		return nil
	}
	first, newest := c.sched.next(last), tail[len(tail)-1]
	logArgs := []any{"missed", n, "first", fmtSlot(first), "last", fmtSlot(newest), "policy", c.missed}

	if c.missed == "skip" {
		c.log.Warn("cron slots were missed and are skipped (missed: skip)", logArgs...)
		count(c.function, "missed_dropped", n)
		return c.advance(ctx, st, newest, lastID)
	}
	if busy, err := c.busy(ctx, lastID); err != nil {
		return err
	} else if busy {
		c.log.Warn("cron slots were missed; their catch-up is skipped: the previous invocation has not finished (overlap: skip)",
			append(logArgs, "previous", lastID)...)
		count(c.function, "skipped_overlap", int64(len(tail)))
		count(c.function, "missed_dropped", n-int64(len(tail)))
		return c.advance(ctx, st, newest, lastID)
	}
	if dropped := n - int64(len(tail)); dropped > 0 {
		if c.missed == "all" {
			c.log.Warn("cron slots were missed beyond the catch-up cap; the oldest are dropped",
				"dropped", dropped, "first_dropped", fmtSlot(first), "kept_from", fmtSlot(tail[0]), "cap", MaxCatchUp)
		}
		count(c.function, "missed_dropped", dropped)
	}
	subs := make([]fnhost.Submission, len(tail))
	for i, slot := range tail {
		subs[i] = c.submission(slot, true, n)
	}
	res, err := c.sub.Submit(ctx, subs...)
	if err != nil {
		return fmt.Errorf("submit missed slots: %w", err)
	}
	for _, r := range res {
		if r.Duplicate {
			count(c.function, "duplicate", 1)
		} else {
			count(c.function, "caught_up", 1)
		}
	}
	c.log.Info("cron slots were missed; caught up", append(logArgs, "invocations", len(res))...)
	return c.advanceAfterSubmit(ctx, st, newest, res[len(res)-1].ID)
}

// reconcile moves last past on-time slots that were submitted but not recorded: by a
// host that stopped between the two writes, or by another instance.
func (c *Trigger) reconcile(ctx context.Context, last time.Time, lastID string) (time.Time, string, error) {
	for range 16 {
		slot := c.sched.next(last)
		if slot.IsZero() || slot.After(time.Now()) {
			break
		}
		id := c.slotID(slot)
		inv, err := c.store.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return last, lastID, err
		}
		if inv.DedupKey != c.dedupKey(slot) {
			break
		}
		last, lastID = slot, id
	}
	return last, lastID, nil
}

// advanceAfterSubmit records a submitted slot even when ctx was cancelled meanwhile, so
// that a host that stops right after a slot does not count it as missed on restart.
func (c *Trigger) advanceAfterSubmit(ctx context.Context, st *state, slot time.Time, id string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return c.advance(wctx, st, slot, id)
}

// busy reports whether overlap: skip holds back a slot: the invocation submitted last
// has not finished.
func (c *Trigger) busy(ctx context.Context, lastID string) (bool, error) {
	if c.overlap != "skip" || lastID == "" {
		return false, nil
	}
	inv, err := c.store.Get(ctx, lastID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the previous invocation %s: %w", lastID, err)
	}
	return !inv.State.Terminal(), nil
}

// tick is the data of a cron event.
type tick struct {
	Schedule    string `json:"schedule"`
	Timezone    string `json:"timezone"`
	Slot        string `json:"slot"`
	PastDue     bool   `json:"past_due"`
	MissedSlots int64  `json:"missed_slots,omitempty"`
}

func (c *Trigger) submission(slot time.Time, pastDue bool, missed int64) fnhost.Submission {
	data, _ := json.Marshal(tick{Schedule: c.spec, Timezone: c.tz, Slot: fmtSlot(slot), PastDue: pastDue, MissedSlots: missed})
	ev := fnhost.NewEvent("fnhost/cron/"+c.function, EventType, fmtSlot(slot), data)
	ev.Time = slot.UTC()
	return fnhost.Submission{Function: c.function, Trigger: TriggerName, Event: ev, DedupKey: c.dedupKey(slot)}
}

func (c *Trigger) dedupKey(slot time.Time) string { return c.prefix + fmtSlot(slot) }

// slotID is the invocation id of an on-time slot: a ULID of the slot's time whose
// random part is derived from the function and the dedup key, the same on every host.
func (c *Trigger) slotID(slot time.Time) string {
	sum := sha256.Sum256([]byte(c.function + "\x00" + c.dedupKey(slot)))
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(slot))
	_ = id.SetEntropy(sum[:10])
	return id.String()
}

func fmtSlot(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// sleepUntil sleeps until the wall clock reaches t, in steps of at most maxSleep. It
// returns false when ctx is done first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		timer.Reset(min(d, maxSleep))
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
	}
}

func sleepFor(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// backoff spaces retries after store or submit errors: 100ms doubling up to 5s.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else {
		b.d = min(2*b.d, 5*time.Second)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }
