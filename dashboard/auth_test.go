package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store/sqlite"
)

// idle is a Backend with nothing in it: the session tests ask nothing of it.
type idle struct{}

func (idle) Functions() []Function                    { return nil }
func (idle) Queues() map[string][]string              { return nil }
func (idle) Servers(context.Context) (Servers, error) { return Servers{}, nil }
func (idle) Invoke(context.Context, string, json.RawMessage) (string, error) {
	return "", nil
}
func (idle) Retry(context.Context, string) (*fnhost.Invocation, error)  { return nil, nil }
func (idle) Cancel(context.Context, string) (*fnhost.Invocation, error) { return nil, nil }

func newTestDashboard(t *testing.T, key string, now *time.Time) *Dashboard {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d, err := New(context.Background(), Config{Store: st, Backend: idle{}, APIKey: key, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSessionExpires: a session is good for sessionLife, and only with the key that
// signed it.
func TestSessionExpires(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	d := newTestDashboard(t, "key-one", &now)
	cookie := d.newSession(now.Add(sessionLife))
	req := httptest.NewRequest("GET", "/dashboard/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	if !d.validSession(req) {
		t.Fatal("a fresh session is refused")
	}
	now = now.Add(sessionLife - time.Minute)
	if !d.validSession(req) {
		t.Fatal("a session is refused before its end")
	}
	now = now.Add(2 * time.Minute)
	if d.validSession(req) {
		t.Fatal("an expired session is accepted")
	}
	now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	other := newTestDashboard(t, "key-two", &now)
	if other.validSession(req) {
		t.Fatal("a session signed with another key is accepted")
	}
}

// TestFormSecretShared: an open dashboard signs its forms with a secret kept in the
// store, so that a second instance (or a restart) accepts the tokens of the first.
func TestFormSecretShared(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := New(context.Background(), Config{Store: st, Backend: idle{}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(context.Background(), Config{Store: st, Backend: idle{}})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.csrfKey) != string(b.csrfKey) || len(a.csrfKey) == 0 {
		t.Fatal("two dashboards on one store sign their forms with different keys")
	}
}
