package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
)

// TestMigrateFromSchema1 opens a database written by a build that knew only schema 1:
// its invocations stay, and the state and receipt tables appear.
func TestMigrateFromSchema1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fnhost.db")
	schema1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	execRaw(t, path, `CREATE TABLE schema_version (version INTEGER NOT NULL);
		INSERT INTO schema_version (version) VALUES (1);`+string(schema1)+`
		INSERT INTO invocations (id, function, state, max_attempts, run_at, created_at)
		VALUES ('01JX0000000000000000000001', 'f', 'succeeded', 1, 0, 0);`)

	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open of a schema 1 database: %v", err)
	}
	if inv, err := s.Get(ctx, "01JX0000000000000000000001"); err != nil || inv.State != fnhost.StateSucceeded {
		t.Fatalf("Get of an invocation written under schema 1: %+v, %v", inv, err)
	}
	if err := s.PutState(ctx, "cron/f", []byte("slot")); err != nil {
		t.Fatalf("PutState: %v", err)
	}
	inv := newInv("f", t0)
	inv.ReceiptKey, inv.ReceiptVersion = "in/a", "v1"
	if _, err := s.Enqueue(ctx, []store.NewInvocation{inv}); err != nil {
		t.Fatalf("Enqueue with a receipt: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if v := schemaVersion(t, path); v != sqlite.SchemaVersion() || v < 2 {
		t.Fatalf("schema version %d, want %d", v, sqlite.SchemaVersion())
	}

	// The state and the receipt outlive the process.
	s = openAt(t, path)
	if v, err := s.GetState(ctx, "cron/f"); err != nil || string(v) != "slot" {
		t.Fatalf("GetState after reopen: %q, %v", v, err)
	}
	dup := newInv("f", t0)
	dup.ReceiptKey, dup.ReceiptVersion = "in/a", "v1"
	res, err := s.Enqueue(ctx, []store.NewInvocation{dup})
	if err != nil || res[0] != (store.EnqueueResult{ID: inv.ID, Duplicate: true}) {
		t.Fatalf("Enqueue of a seen version after reopen: %+v, %v; want duplicate of %s", res, err, inv.ID)
	}
}

func openAt(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestReceiptKeysAnyBytes uses keys that are not UTF-8 (file names on Linux are bytes):
// they round-trip, and a prefix ending in 0xff bytes still bounds the listing.
func TestReceiptKeysAnyBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t)
	keys := []string{"a", "a\xff", "a\xff\xff", "a\xffb", "a\xfe", "b", "\xff", "\xff\xff", "\xff\x00"}
	var invs []store.NewInvocation
	for _, k := range keys {
		inv := newInv("f", t0)
		inv.ReceiptKey, inv.ReceiptVersion = k, "v:"+k
		invs = append(invs, inv)
	}
	if _, err := s.Enqueue(ctx, invs); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	got, err := s.Receipts(ctx, "f", keys)
	if err != nil || len(got) != len(keys) {
		t.Fatalf("Receipts: %d of %d, %v", len(got), len(keys), err)
	}
	for _, k := range keys {
		if got[k] != "v:"+k {
			t.Fatalf("Receipts[%q] = %q, want %q", k, got[k], "v:"+k)
		}
	}
	for _, c := range []struct {
		prefix, after string
		want          []string
	}{
		{"a\xff", "", []string{"a\xff", "a\xffb", "a\xff\xff"}},
		{"a\xff", "a\xff", []string{"a\xffb", "a\xff\xff"}},
		{"a\xff\xff", "", []string{"a\xff\xff"}},
		{"a", "a\xfe", []string{"a\xff", "a\xffb", "a\xff\xff"}},
		{"\xff", "", []string{"\xff", "\xff\x00", "\xff\xff"}},
		{"\xff\xff", "", []string{"\xff\xff"}},
		{"", "b", []string{"\xff", "\xff\x00", "\xff\xff"}},
	} {
		got, err := s.ReceiptKeys(ctx, "f", c.prefix, c.after, 100)
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("ReceiptKeys(%q, after %q): %q, %v; want %q", c.prefix, c.after, got, err, c.want)
		}
	}
	if err := s.ForgetReceipts(ctx, "f", []string{"a\xff", "\xff\x00"}); err != nil {
		t.Fatalf("ForgetReceipts: %v", err)
	}
	got, err = s.Receipts(ctx, "f", keys)
	if err != nil || len(got) != len(keys)-2 || got["a\xff"] != "" || got["\xff\x00"] != "" {
		t.Fatalf("Receipts after ForgetReceipts: %q, %v", got, err)
	}
}
