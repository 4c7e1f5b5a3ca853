package fnhost

import (
	"testing"
	"time"
)

// TestMinIDAt: MinIDAt bounds the ids of its millisecond: every id made for it or later
// sorts at or after the bound, every id made a millisecond earlier before it.
func TestMinIDAt(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 12, 6, 1, 2, 3, 456_789_000, time.UTC),
		time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC),
		time.UnixMilli(1),
	} {
		bound := MinIDAt(at)
		if len(bound) != 26 {
			t.Fatalf("MinIDAt(%s) = %q: not a ULID", at, bound)
		}
		for range 100 {
			if id := NewIDAt(at); id < bound {
				t.Fatalf("NewIDAt(%s) = %s sorts before MinIDAt = %s", at, id, bound)
			}
			if id := NewIDAt(at.Add(time.Millisecond)); id < bound {
				t.Fatalf("an id of the next millisecond, %s, sorts before %s", id, bound)
			}
			if id := NewIDAt(at.Add(-time.Millisecond)); id >= bound {
				t.Fatalf("an id of the millisecond before, %s, sorts at or after %s", id, bound)
			}
		}
	}
	if got := MinIDAt(time.Time{}); got != "00000000000000000000000000" {
		t.Errorf("MinIDAt of the zero time = %s, want the smallest id", got)
	}
}
