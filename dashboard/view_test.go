package dashboard

import (
	"testing"
	"time"

	"github.com/fnhost/fnhost"
)

func TestNiceCeil(t *testing.T) {
	for in, want := range map[int64]int64{0: 4, 3: 4, 5: 5, 7: 8, 9: 10, 11: 20, 150: 200, 401: 500, 999: 1000, 1001: 2000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestIDTime(t *testing.T) {
	at := time.Date(2026, 12, 6, 2, 3, 4, 5_000_000, time.UTC)
	if got := idTime("01M94HX73ZCWVWPBP4R33HCYGP"); got.IsZero() {
		t.Errorf("idTime of a ULID is zero")
	}
	for _, bad := range []string{"", "short", "01M94HX7U!CWVWPBP4R33HCYGP"} {
		if got := idTime(bad); !got.IsZero() {
			t.Errorf("idTime(%q) = %s, want zero", bad, got)
		}
	}
	// The bound fnhost uses for time filters decodes to its millisecond.
	if got := idTime(fnhost.MinIDAt(at)); !got.Equal(at) {
		t.Errorf("idTime(MinIDAt(%s)) = %s", at, got)
	}
}

func TestCompactAndThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1500: "1.5k", 25_000: "25k", 1_200_000: "1.2M", 30_000_000: "30M"} {
		if got := compact(in); got != want {
			t.Errorf("compact(%d) = %q, want %q", in, got, want)
		}
	}
	if got := thousands(-1234567); got != "-1\u202f234\u202f567" {
		t.Errorf("thousands = %q", got)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:8080": true, "127.0.0.1:80": true, "127.9.9.9": true, "[::1]:8080": true,
		"::1": true, "a.localhost": true, "localhost.": true, "evil.example": false, "10.0.0.1:80": false,
		"localhost.evil.example": false, "": false, "127.0.0.1.nip.io": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/dashboard/failed?function=x": "/dashboard/failed?function=x",
		"https://evil.example/":        "/dashboard/",
		"//evil.example/dashboard/":    "/dashboard/",
		"/dashboard/\\evil":            "/dashboard/",
		"":                             "/dashboard/",
		"/api/v1/functions":            "/dashboard/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0: "just now", 5 * time.Second: "5 s ago", 3 * time.Minute: "3 min ago", 5 * time.Hour: "5 h ago",
		72 * time.Hour: "3 d ago", -90 * time.Second: "in 1 min",
	} {
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("ago(-%s) = %q, want %q", d, got, want)
		}
	}
	if got := ago(time.Time{}, now); got != "–" {
		t.Errorf("ago(zero) = %q", got)
	}
}
