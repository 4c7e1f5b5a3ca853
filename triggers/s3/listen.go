package s3

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/minio/minio-go/v7/pkg/notification"
)

// listenKeyEncoding is how MinIO's listen stream writes keys: as they are, unlike its
// webhook notifications.
const listenKeyEncoding = keyRaw

// runListen follows MinIO's ListenBucketNotification stream, reconnecting with backoff,
// and lists the bucket after every (re)connection and every reconcile: the stream
// loses what happens while it is down.
func (t *Trigger) runListen(ctx context.Context) error {
	mc, err := newMinioClient(t.cfg)
	if err != nil {
		return err
	}
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.reconcileLoop(ctx, kick)
	}()
	defer func() { <-done }()

	var events []string
	if t.filter.created || t.filter.listedCreated() {
		events = append(events, "s3:ObjectCreated:*")
	}
	events = append(events, "s3:ObjectRemoved:*")
	for _, n := range t.filter.names {
		if !stringsHasFamily(n, "ObjectCreated") && !stringsHasFamily(n, "ObjectRemoved") {
			events = append(events, "s3:"+n)
		}
	}
	delay := time.Duration(0)
	first := true
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		ch := mc.ListenBucketNotification(sctx, t.cfg.Bucket, t.cfg.Prefix, t.cfg.Suffix, events)
		if !first {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		first = false
		err := t.consumeListen(ctx, ch)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		delay = backoff(delay, 100*time.Millisecond, 30*time.Second)
		t.log.Warn("s3: the listen stream ended; reconnecting", "in", delay, "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	return nil
}

// consumeListen submits the records of one listen stream until it ends.
func (t *Trigger) consumeListen(ctx context.Context, ch <-chan notificationInfo) error {
	for info := range ch {
		if info.Err != nil {
			return info.Err
		}
		if len(info.Records) == 0 {
			continue
		}
		var recs []Record
		for _, ev := range info.Records {
			raw, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			var w wireRecord
			if err := json.Unmarshal(raw, &w); err != nil {
				return err
			}
			r, err := w.record(listenKeyEncoding)
			if err != nil {
				t.log.Warn("s3: a listen record was not understood; the next listing finds its object", "error", err)
				continue
			}
			recs = append(recs, r)
		}
		// A record that cannot be persisted now is found by the next listing, which
		// the reconnection triggers.
		for {
			if _, err := t.accept(ctx, "listen", recs, false); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				t.log.Error("s3: could not persist a listen record; trying again", "error", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("stream closed by the server")
}

func stringsHasFamily(name, fam string) bool {
	return len(name) > len(fam) && name[:len(fam)] == fam && name[len(fam)] == ':'
}

// notificationInfo is one message of minio-go's listen stream.
type notificationInfo = notification.Info
