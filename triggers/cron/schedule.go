package cron

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/fnhost/fnhost/manifest"
)

// starBit is robfig/cron's mark of a field written as "*".
const starBit = 1 << 63

// allHours is the hour field that matches every hour of the day.
const allHours = 1<<24 - 1

// epoch anchors @every schedules.
var epoch = time.Unix(0, 0)

// schedule computes the slots of a trigger: the instants at which it fires. Slots are
// a pure function of the schedule and the time zone, never of when a host started, so
// that every instance and every restart agrees on them; that is what lets the slot be
// the dedup key.
//
// Field schedules ("0 2 * * *") are evaluated on the wall clock of loc, with these
// rules where a daylight-saving change bends it:
//   - a wall-clock time that does not exist (the clock jumps from 02:00 to 03:00) fires
//     at the instant of the jump, once, however many slots fell into the gap;
//   - a wall-clock time that happens twice (the clock falls back from 03:00 to 02:00)
//     fires once, at its first occurrence, unless the hour field matches every hour
//     ("*/15 * * * *", @hourly): such schedules keep their rhythm through both passes.
//
// @every D schedules fire at the multiples of D since the Unix epoch (so @every 1m fires
// at second 0 of every minute, @every 30s at seconds 0 and 30), whatever the time zone.
type schedule struct {
	loc *time.Location
	// every is set for @every schedules.
	every time.Duration
	// spec holds the fields of the other schedules, evaluated on wall-clock times
	// written as UTC times (UTC has no daylight-saving changes).
	spec *robfig.SpecSchedule
	// repeatFold makes the hour that happens twice fire twice.
	repeatFold bool
}

func newSchedule(spec string, loc *time.Location) (*schedule, error) {
	parsed, err := manifest.ParseCron(spec)
	if err != nil {
		return nil, err
	}
	s := &schedule{loc: loc}
	switch p := parsed.(type) {
	case robfig.ConstantDelaySchedule:
		s.every = p.Delay
	case *robfig.SpecSchedule:
		cp := *p
		cp.Location = time.UTC
		s.spec = &cp
		s.repeatFold = cp.Hour&allHours == allHours
	default:
		return nil, fmt.Errorf("unsupported schedule type %T", parsed)
	}
	if s.every < 0 {
		return nil, errors.New("negative interval")
	}
	return s, nil
}

// next returns the first slot strictly after t, or the zero time when there is none
// within five years.
func (s *schedule) next(t time.Time) time.Time {
	if s.spec == nil {
		k := floorDiv(t.Sub(epoch), s.every)
		return epoch.Add(time.Duration(k+1) * s.every).In(s.loc)
	}
	t = t.In(s.loc)
	best := s.nextByWall(t)
	if s.repeatFold {
		if r := s.nextInRepeat(t); !r.IsZero() && (best.IsZero() || r.Before(best)) {
			best = r
		}
	}
	return best
}

// nextByWall walks the wall clock forward from t's and returns the first instant after
// t of a matching wall-clock time.
func (s *schedule) nextByWall(t time.Time) time.Time {
	w := wall(t)
	for range 1 << 20 {
		w = s.spec.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		first, second := s.instants(w)
		if first.After(t) {
			return first
		}
		if s.repeatFold && !second.IsZero() && second.After(t) {
			return second
		}
	}
	return time.Time{}
}

// nextInRepeat returns, when the clock falls back after t, the first slot in the
// second pass of the repeated wall-clock range.
func (s *schedule) nextInRepeat(t time.Time) time.Time {
	_, end := t.ZoneBounds()
	if end.IsZero() {
		return time.Time{}
	}
	_, before := t.Zone()
	_, after := end.Zone()
	if after >= before {
		return time.Time{}
	}
	fold := time.Duration(before-after) * time.Second
	start := wall(end) // the wall clock just after falling back
	w := s.spec.Next(start.Add(-time.Nanosecond))
	if w.IsZero() || !w.Before(start.Add(fold)) {
		return time.Time{}
	}
	return end.Add(w.Sub(start))
}

// instants returns the instants at which the wall-clock time w (written in UTC) happens
// in loc: first is always set; second is set when the time happens twice. A time that
// does not exist maps to the instant the clock jumped over it.
func (s *schedule) instants(w time.Time) (first, second time.Time) {
	y, mo, d := w.Date()
	h, mi, se := w.Clock()
	t := time.Date(y, mo, d, h, mi, se, 0, s.loc)
	tw := wall(t)
	start, end := t.ZoneBounds()
	if !tw.Equal(w) {
		// A gap: t is w read with the offset of one side of the jump.
		if tw.After(w) {
			return start, time.Time{}
		}
		return end, time.Time{}
	}
	_, off := t.Zone()
	if !start.IsZero() {
		_, prev := start.Add(-time.Nanosecond).Zone()
		if alt := t.Add(time.Duration(off-prev) * time.Second); prev != off && alt.Before(start) && wall(alt.In(s.loc)).Equal(w) {
			return alt, t
		}
	}
	if !end.IsZero() {
		_, nxt := end.Zone()
		if alt := t.Add(time.Duration(off-nxt) * time.Second); nxt != off && !alt.Before(end) && wall(alt.In(s.loc)).Equal(w) {
			return t, alt
		}
	}
	return t, time.Time{}
}

// span returns how many slots fall in (from, to] and the last keep of them, oldest
// first. It does not visit every slot: a whole day without a clock change is counted
// from the fields, so that even a long gap with a schedule firing every second is
// counted at once.
func (s *schedule) span(from, to time.Time, keep int) (int64, []time.Time) {
	if !to.After(from) {
		return 0, nil
	}
	if s.spec == nil {
		kFrom, kTo := floorDiv(from.Sub(epoch), s.every), floorDiv(to.Sub(epoch), s.every)
		n := kTo - kFrom
		var tail []time.Time
		for k := max(kFrom+1, kTo-int64(keep)+1); k <= kTo; k++ {
			tail = append(tail, epoch.Add(time.Duration(k)*s.every).In(s.loc))
		}
		return n, tail
	}
	n := s.walk(from, to, math.MaxInt64, nil)
	if keep <= 0 {
		return n, nil
	}
	tail := make([]time.Time, 0, min(int64(keep), n))
	s.walk(from, to, max(0, n-int64(keep)), func(t time.Time) { tail = append(tail, t) })
	return n, tail
}

// walk counts the slots in (from, to] and hands those after the first skip to visit.
// Whole days that have no clock change, end before to, and keep the count within skip
// are counted from the fields without visiting their slots.
func (s *schedule) walk(from, to time.Time, skip int64, visit func(time.Time)) int64 {
	var n int64
	cur := from.In(s.loc)
	y, m, d := cur.Date()
	for day := 0; ; day++ {
		ds := time.Date(y, m, d+day, 0, 0, 0, 0, s.loc)
		de := time.Date(y, m, d+day+1, 0, 0, 0, 0, s.loc)
		k, regular := s.dayCount(ds, de)
		if day > 0 && regular && !de.After(to) && n+k <= skip {
			n += k
		} else {
			for t := s.next(cur); !t.IsZero() && t.Before(de) && !t.After(to); t = s.next(t) {
				n++
				if n > skip && visit != nil {
					visit(t)
				}
			}
		}
		if de.After(to) {
			return n
		}
		cur = de.Add(-time.Nanosecond)
	}
}

// dayCount counts the slots of the day [ds, de) from the fields; regular is false when
// the day has a clock change (its length is not 24 hours or its offset changes), for
// which the slots must be walked.
func (s *schedule) dayCount(ds, de time.Time) (k int64, regular bool) {
	_, o1 := ds.Zone()
	_, o2 := de.Zone()
	if de.Sub(ds) != 24*time.Hour || o1 != o2 {
		return 0, false
	}
	w := wall(ds)
	if w.Hour() != 0 || w.Minute() != 0 || w.Second() != 0 {
		return 0, false
	}
	sp := s.spec
	if 1<<uint(w.Month())&sp.Month == 0 {
		return 0, true
	}
	domMatch := 1<<uint(w.Day())&sp.Dom != 0
	dowMatch := 1<<uint(w.Weekday())&sp.Dow != 0
	if sp.Dom&starBit != 0 || sp.Dow&starBit != 0 {
		if !domMatch || !dowMatch {
			return 0, true
		}
	} else if !domMatch && !dowMatch {
		return 0, true
	}
	count := func(f uint64) int64 { return int64(bits.OnesCount64(f &^ starBit)) }
	return count(sp.Hour) * count(sp.Minute) * count(sp.Second), true
}

// wall returns t's wall-clock time in its location, written as a UTC time.
func wall(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, se := t.Clock()
	return time.Date(y, mo, d, h, mi, se, t.Nanosecond(), time.UTC)
}

// floorDiv divides rounding toward minus infinity.
func floorDiv(a, b time.Duration) int64 {
	q := int64(a / b)
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
