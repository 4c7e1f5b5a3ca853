package cron

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func mustSchedule(t *testing.T, spec, tz string) *schedule {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSchedule(spec, loc)
	if err != nil {
		t.Fatalf("%q: %v", spec, err)
	}
	return s
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// slots lists the first n slots after from, in UTC.
func slots(s *schedule, from time.Time, n int) []string {
	var out []string
	for t := from; len(out) < n; {
		t = s.next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t.UTC().Format(time.RFC3339))
	}
	return out
}

func TestCronSlots(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, spec, tz, from string
		want                 []string
	}{
		{"seconds field", "*/15 * * * * *", "UTC", "2025-01-01T10:00:07Z",
			[]string{"2025-01-01T10:00:15Z", "2025-01-01T10:00:30Z", "2025-01-01T10:00:45Z", "2025-01-01T10:01:00Z"}},
		{"five fields", "30 9 * * MON-FRI", "UTC", "2025-01-03T09:30:00Z", // a Friday, at the slot
			[]string{"2025-01-06T09:30:00Z", "2025-01-07T09:30:00Z"}},
		{"every aligned to the epoch", "@every 30s", "UTC", "2025-01-01T10:00:07.5Z",
			[]string{"2025-01-01T10:00:30Z", "2025-01-01T10:01:00Z", "2025-01-01T10:01:30Z"}},
		{"every ignores the zone", "@every 1h", "Asia/Kolkata", "2025-01-01T10:20:00Z",
			[]string{"2025-01-01T11:00:00Z", "2025-01-01T12:00:00Z"}},
		{"daily in a zone", "@daily", "America/New_York", "2025-01-01T00:00:00Z",
			[]string{"2025-01-01T05:00:00Z", "2025-01-02T05:00:00Z"}},
		{"hourly", "@hourly", "UTC", "2025-01-01T00:59:59.9Z",
			[]string{"2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z"}},
		// 2025-03-30 02:00 CET does not exist in Rome (the clock jumps to 03:00 CEST):
		// the slot fires at the jump, 01:00Z, and the next day at 02:00 CEST, 00:00Z.
		{"Rome spring forward", "0 2 * * *", "Europe/Rome", "2025-03-28T00:00:00Z",
			[]string{"2025-03-28T01:00:00Z", "2025-03-29T01:00:00Z", "2025-03-30T01:00:00Z", "2025-03-31T00:00:00Z", "2025-04-01T00:00:00Z"}},
		// 2025-10-26 02:00 happens twice in Rome (CEST, then CET after 03:00 CEST): a
		// fixed-hour schedule fires once, at the first.
		{"Rome fall back", "0 2 * * *", "Europe/Rome", "2025-10-24T12:00:00Z",
			[]string{"2025-10-25T00:00:00Z", "2025-10-26T00:00:00Z", "2025-10-27T01:00:00Z", "2025-10-28T01:00:00Z"}},
		{"Rome fall back, half past two", "30 2 * * *", "Europe/Rome", "2025-10-25T12:00:00Z",
			[]string{"2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"}},
		// Slots inside the gap collapse into one at the jump.
		{"gap collapses", "*/20 * * * *", "Europe/Rome", "2025-03-30T00:30:00Z",
			[]string{"2025-03-30T00:40:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:20:00Z"}},
		// A schedule that fires every hour keeps its rhythm through the repeated hour.
		{"every-hour schedule through fall back", "*/30 * * * *", "Europe/Rome", "2025-10-26T00:00:00Z",
			[]string{"2025-10-26T00:30:00Z", "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z", "2025-10-26T02:00:00Z"}},
		{"never", "0 0 30 2 *", "UTC", "2025-01-01T00:00:00Z", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustSchedule(t, c.spec, c.tz)
			got := slots(s, utc(c.from), max(len(c.want), 1))
			if !slices.Equal(got, c.want) {
				t.Errorf("%s (%s) after %s:\n got %v\nwant %v", c.spec, c.tz, c.from, got, c.want)
			}
		})
	}
}

// TestSlotsFromInsideRepeat starts from an instant in the second pass of the repeated
// hour: a fixed-hour slot that already fired in the first pass does not fire again.
func TestCronSlotsFromInsideRepeat(t *testing.T) {
	t.Parallel()
	s := mustSchedule(t, "30 2 * * *", "Europe/Rome")
	// 01:10Z is 02:10 CET, the second pass; 02:30 CEST (00:30Z) has fired already.
	if got := s.next(utc("2025-10-26T01:10:00Z")).UTC(); !got.Equal(utc("2025-10-27T01:30:00Z")) {
		t.Errorf("next = %s", got)
	}
	h := mustSchedule(t, "15 * * * *", "Europe/Rome")
	// From the first pass at 02:50 CEST (00:50Z), the next is 02:15 CET (01:15Z).
	if got := h.next(utc("2025-10-26T00:50:00Z")).UTC(); !got.Equal(utc("2025-10-26T01:15:00Z")) {
		t.Errorf("hourly next = %s", got)
	}
}

// TestSpanMatchesWalk checks the counting shortcut against walking every slot, over
// ranges that cross daylight-saving changes.
func TestCronSpanMatchesWalk(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	specs := []string{"0 2 * * *", "30 2 * * *", "*/20 * * * *", "0 */7 * * *", "15 10 1,15 * *", "0 9 * * MON-FRI",
		"0 9 13 * FRI", "*/10 * * * * *", "0 0 29 2 *", "@hourly", "@daily", "@every 45s", "@every 7m"}
	zones := []string{"UTC", "Europe/Rome", "America/New_York", "Australia/Lord_Howe", "America/Santiago"}
	for _, spec := range specs {
		for _, tz := range zones {
			s := mustSchedule(t, spec, tz)
			for range 4 {
				from := utc("2025-01-01T00:00:00Z").Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
				length := time.Duration(rng.Int64N(int64(8 * 24 * time.Hour)))
				if spec == "*/10 * * * * *" || spec == "@every 45s" {
					length /= 4
				}
				to := from.Add(length)
				var all []time.Time
				for x := s.next(from); !x.IsZero() && !x.After(to); x = s.next(x) {
					all = append(all, x)
				}
				for _, keep := range []int{0, 1, 3, 1000} {
					n, tail := s.span(from, to, keep)
					if n != int64(len(all)) {
						t.Fatalf("%s %s (%s, %s]: span counts %d, walk %d", spec, tz, from, to, n, len(all))
					}
					want := all[max(0, len(all)-keep):]
					if keep == 0 {
						want = nil
					}
					if !slices.EqualFunc(tail, want, time.Time.Equal) {
						t.Fatalf("%s %s keep %d: tail %v, want %v", spec, tz, keep, tail, want)
					}
				}
			}
		}
	}
}

// TestSpanLongGap counts a year of a schedule that fires every second without
// visiting each slot.
func TestCronSpanLongGap(t *testing.T) {
	t.Parallel()
	s := mustSchedule(t, "* * * * * *", "Europe/Rome")
	start := time.Now()
	n, tail := s.span(utc("2024-01-01T00:00:00Z"), utc("2025-01-01T00:00:00Z"), 1000)
	if n != 366*24*3600 {
		t.Errorf("n = %d, want %d", n, 366*24*3600)
	}
	if len(tail) != 1000 || !tail[999].Equal(utc("2025-01-01T00:00:00Z")) || !tail[0].Equal(utc("2024-12-31T23:43:21Z")) {
		t.Errorf("tail = %d slots, %s … %s", len(tail), tail[0], tail[len(tail)-1])
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("span of a year took %s", d)
	}
}
