package sqlite

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// TestConcurrentReadsOnSmallPool: reads that each hold a read transaction never wait
// for each other, even on the smallest pool and before any statement is prepared.
func TestConcurrentReadsOnSmallPool(t *testing.T) {
	for round := range 5 {
		st, err := Open(context.Background(), filepath.Join(t.TempDir(), "fnhost.db"), Options{ReadConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		id := fnhost.NewID()
		if _, err := st.Enqueue(context.Background(), []store.NewInvocation{{
			ID: id, Function: "f", Event: json.RawMessage(`{}`), MaxAttempts: 1, CreatedAt: time.Now().UTC(),
		}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 16 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				if _, err := st.Get(ctx, id); err != nil {
					errs <- err
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := st.Stats(ctx, time.Now().UTC()); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: concurrent reads: %v", round, err)
		}
		st.Close()
	}
}
