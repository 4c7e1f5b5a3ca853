package cron

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// state is a trigger's progress, stored in the store under the trigger's key. Several
// instances share it: each advances it with a compare-and-put from the value it read,
// and one that loses reloads it.
type state struct {
	// LastSlot is the last slot handled, fired or deliberately skipped: no slot at or
	// before it fires again. On a first start it is the start time.
	LastSlot time.Time `json:"last_slot"`
	// LastID is the invocation submitted last, whose state decides overlap: skip.
	LastID string `json:"last_id,omitempty"`

	// raw is the stored value this state was read from or written as.
	raw []byte
}

func (s state) encode() []byte {
	b, _ := json.Marshal(struct {
		LastSlot string `json:"last_slot"`
		LastID   string `json:"last_id,omitempty"`
	}{s.LastSlot.UTC().Format(time.RFC3339Nano), s.LastID})
	return b
}

func decodeState(raw []byte) (state, error) {
	var s state
	if err := json.Unmarshal(raw, &s); err != nil {
		return state{}, err
	}
	if s.LastSlot.IsZero() {
		return state{}, fmt.Errorf("no last_slot")
	}
	s.raw = raw
	return s, nil
}

// loadState reads the stored state. On a first start (no state) it stores the start
// time as the last slot, so that nothing before it is caught up. A state it cannot read
// is replaced the same way.
func (c *Trigger) loadState(ctx context.Context) (state, error) {
	for {
		raw, err := c.store.GetState(ctx, c.key)
		if err != nil {
			return state{}, err
		}
		if raw != nil {
			st, err := decodeState(raw)
			if err == nil {
				return st, nil
			}
			c.log.Warn("cron state is unreadable; starting afresh from now", "key", c.key, "err", err)
		} else {
			c.log.Info("cron trigger starts for the first time: slots before now are not caught up", "key", c.key)
		}
		fresh := state{LastSlot: time.Now().UTC()}
		fresh.raw = fresh.encode()
		ok, err := c.store.CompareAndPutState(ctx, c.key, raw, fresh.raw)
		if err != nil {
			return state{}, err
		}
		if ok {
			return fresh, nil
		}
		// Another instance wrote it first: read theirs.
	}
}

// advance records slot as handled, with id as the last submitted invocation. When
// another instance moved the state meanwhile, it loads theirs instead.
func (c *Trigger) advance(ctx context.Context, st *state, slot time.Time, id string) error {
	next := state{LastSlot: slot.UTC(), LastID: id}
	next.raw = next.encode()
	ok, err := c.store.CompareAndPutState(ctx, c.key, st.raw, next.raw)
	if err != nil {
		return fmt.Errorf("record slot %s: %w", slot.UTC().Format(time.RFC3339), err)
	}
	if ok {
		*st = next
		return nil
	}
	fresh, err := c.loadState(ctx)
	if err != nil {
		return fmt.Errorf("reload cron state: %w", err)
	}
	*st = fresh
	return nil
}
