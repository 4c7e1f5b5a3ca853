// Package s3 is the bucket trigger: every object version that lands in a watched bucket
// of S3, MinIO or any S3-compatible store invokes the function once, whether fnhost
// heard of it through a notification or found it by listing the bucket.
//
//	triggers:
//	  - s3: {endpoint: http://127.0.0.1:9000, bucket: uploads, prefix: images/, suffix: .jpg,
//	         events: [created], mode: webhook, token: ${S3_HOOK_TOKEN}}
//
// Intake modes:
//
//   - webhook (default): the server POSTs its notifications to the host's receiver at
//     /hooks/s3 (one receiver for every s3 trigger of the host; each trigger takes the
//     records of its bucket, prefix, suffix and events). The request must carry the
//     trigger's token as "Authorization: Bearer <token>" (what MinIO's auth_token
//     sends); a trigger without a token takes only requests from loopback. The answer
//     is 200 once every record is persisted, 503 when the store failed (the server
//     sends again: MinIO keeps undelivered events in its queue_dir), 400 for a body
//     that is no notification, 401 for a missing or wrong token. With target set, the
//     trigger adds arn:minio:sqs::<target>:webhook to the bucket's notification
//     configuration at start; `fnhost s3 setup` does the same and prints the MinIO
//     settings of the target.
//   - listen: MinIO's ListenBucketNotification stream, reconnected with backoff.
//   - poll: ListObjectsV2 over the prefix every interval, for any S3 API.
//   - sqs: S3 notifications delivered to an SQS queue (directly or through SNS), read by
//     long polling; a message is deleted once its records are persisted.
//
// In the push modes (webhook, listen, sqs) the trigger also lists the bucket at start
// and every reconcile (default 5m): what landed while fnhost was down, disconnected, or
// while a notification was lost is still invoked.
//
// Exactly once per version: the trigger keeps a receipt per function and object
// (bucket/key) holding the ETag of the last version it submitted, written in the same
// transaction as the invocation. A notification or listing of a version that already
// has its receipt is a duplicate and submits nothing, whichever mode saw it first, and
// across restarts and hosts that share the store. A re-upload with other content has
// another ETag and runs again; metadata-only events (tagging, retention) keep the ETag
// and do not. A removal is recorded with the version "removed": with removed in events
// it invokes the function once, and either way the next upload of that key runs again.
//
// The event is a CloudEvent with source "fnhost/s3/<function>", type
// "fnhost.s3.created", "fnhost.s3.removed" or "fnhost.s3.event" (for the other S3
// event names a raw filter selects), subject "<bucket>/<key>", and as data the S3
// event record in the AWS shape (see Record), its key decoded.
package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/triggers"
)

// Kind is the trigger's manifest name.
const Kind = "s3"

// removedVersion is the receipt version of an object whose removal was recorded.
const removedVersion = "removed"

func init() {
	triggers.Register(Kind, New)
	triggers.RegisterWrapper(Kind, wrapHandler)
}

var (
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fnhost_s3_events_total",
		Help: "S3 records the s3 trigger handled, by function, how they came (webhook, listen, sqs, list) and result (submitted, duplicate, ignored). A listing counts the objects it looked up in the store: new, changed, and on its first pass every object; unchanged ones it skips without a lookup are not counted.",
	}, []string{"function", "via", "result"})
)

func registerMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	_ = reg.Register(eventsTotal)
	_ = reg.Register(refusedTotal)
}

// Trigger is one s3 trigger of one function.
type Trigger struct {
	fn     string
	cfg    *manifest.S3Trigger
	filter filter
	sub    triggers.Submitter
	env    triggers.Env
	log    *slog.Logger

	// client talks to the bucket (listing, heads), built by Run.
	client *awss3.Client
	// reconciler lists the bucket; its state lives with it.
	rec *reconciler
	// ready is closed once the trigger is set up and its first listing is done (or
	// failed).
	ready     chan struct{}
	readyOnce sync.Once
}

var _ triggers.Trigger = (*Trigger)(nil)

// New builds the trigger of env.
func New(env triggers.Env) (triggers.Trigger, error) {
	cfg := env.Trigger.S3
	if cfg == nil {
		return nil, fmt.Errorf("function %q: s3 trigger without configuration", env.Function.Name)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := env.Registerer
	if reg != nil {
		registerMetrics(reg)
	}
	t := &Trigger{
		fn:     env.Function.Name,
		cfg:    cfg,
		filter: newFilter(cfg.Bucket, cfg.Prefix, cfg.Suffix, cfg.Events),
		sub:    env.Submitter,
		env:    env,
		log:    log.With("bucket", cfg.Bucket),
		ready:  make(chan struct{}),
	}
	if cfg.Mode == "webhook" {
		if env.Router == nil {
			return nil, fmt.Errorf("function %q: the s3 webhook needs the host's HTTP listener", t.fn)
		}
		receiverFor(env.Router, env.Manifest).add(t)
	}
	return t, nil
}

// Run works until ctx is done.
func (t *Trigger) Run(ctx context.Context) error {
	ac, err := awsConfig(ctx, t.cfg)
	if err != nil {
		return fmt.Errorf("function %q: %w", t.fn, err)
	}
	t.client = newS3Client(ac, t.cfg)
	t.rec = newReconciler(t)

	switch t.cfg.Mode {
	case "poll":
		return t.runPoll(ctx)
	case "listen":
		return t.runListen(ctx)
	case "sqs":
		return t.runSQS(ctx, ac)
	default:
		if t.cfg.Target != "" {
			if err := ensureNotification(ctx, t.cfg, t.cfg.Target, []*manifest.S3Trigger{t.cfg}); err != nil {
				t.log.Error("s3: could not add the webhook target to the bucket's notifications; the periodic listing still finds every object", "target", t.cfg.Target, "error", err)
			} else {
				t.log.Info("s3: bucket notifications go to the webhook target", "target", t.cfg.Target)
			}
		}
		t.reconcileLoop(ctx, nil)
		return nil
	}
}

// reconcileLoop lists the bucket at start and every reconcile until ctx is done. A
// receive on kick lists at once (the listen mode kicks after each reconnection).
func (t *Trigger) reconcileLoop(ctx context.Context, kick <-chan struct{}) {
	every := t.cfg.Reconcile
	if every <= 0 {
		every = manifest.DefaultS3Reconcile
	}
	delay := time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		err := t.rec.pass(ctx)
		t.setReady()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay = backoff(delay, time.Second, every)
			t.log.Warn("s3: listing the bucket failed; trying again", "in", delay, "error", err)
			timer.Reset(delay)
			continue
		}
		delay = 0
		timer.Reset(every)
	}
}

func (t *Trigger) setReady() { t.readyOnce.Do(func() { close(t.ready) }) }

// runPoll lists the bucket every interval.
func (t *Trigger) runPoll(ctx context.Context) error {
	delay := time.Duration(0)
	for {
		wait := t.cfg.Interval
		err := t.rec.pass(ctx)
		t.setReady()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay = backoff(delay, t.cfg.Interval, time.Minute)
			wait = delay
			t.log.Warn("s3: polling the bucket failed; trying again", "in", delay, "error", err)
		} else {
			delay = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// submission turns a record into the submission of an invocation: with a receipt for
// created and removed records, and for the others a dedup key when the record has a
// sequencer (so that a redelivered notification is not run twice).
func (t *Trigger) submission(r Record) (fnhost.Submission, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return fnhost.Submission{}, err
	}
	key := r.S3.Bucket.Name + "/" + r.S3.Object.Key
	typ := "fnhost.s3.event"
	sub := fnhost.Submission{Function: t.fn, Trigger: Kind}
	switch r.family() {
	case familyCreated:
		typ = "fnhost.s3.created"
		sub.ReceiptKey = key
		sub.ReceiptVersion = r.S3.Object.ETag
		if sub.ReceiptVersion == "" {
			sub.ReceiptVersion = "v:" + r.S3.Object.VersionID + r.S3.Object.Sequencer
		}
	case familyRemoved:
		typ = "fnhost.s3.removed"
		sub.ReceiptKey = key
		sub.ReceiptVersion = removedVersion
	default:
		if r.S3.Object.Sequencer != "" {
			// Servers number events per process (versitygw): the time makes it unique.
			sub.DedupKey = "s3:" + r.EventName + ":" + key + ":" + r.S3.Object.Sequencer + ":" + r.EventTime
		}
	}
	sub.Event = fnhost.NewEvent("fnhost/s3/"+t.fn, typ, key, data)
	return sub, nil
}

// accept submits the records of a notification that this trigger watches, and forgets
// the receipts of removed objects it does not watch removals of, so that their next
// upload runs again. It returns how many invocations it submitted. Records found by
// listing (listed) are taken by any filter of their family: a listing cannot tell how an
// object was created.
func (t *Trigger) accept(ctx context.Context, via string, recs []Record, listed bool) (int, error) {
	var subs []fnhost.Submission
	var forget []string
	for _, r := range recs {
		if !t.filter.object(r.S3.Bucket.Name, r.S3.Object.Key) {
			continue
		}
		if !listed && !t.filter.event(r.EventName) {
			if r.family() == familyRemoved {
				forget = append(forget, r.S3.Bucket.Name+"/"+r.S3.Object.Key)
			}
			eventsTotal.WithLabelValues(t.fn, via, "ignored").Inc()
			continue
		}
		sub, err := t.submission(r)
		if err != nil {
			return 0, err
		}
		subs = append(subs, sub)
	}
	if len(forget) > 0 {
		if err := t.env.Store.ForgetReceipts(ctx, t.fn, forget); err != nil {
			return 0, err
		}
	}
	if len(subs) == 0 {
		return 0, nil
	}
	res, err := t.sub.Submit(ctx, subs...)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res {
		if r.Duplicate {
			eventsTotal.WithLabelValues(t.fn, via, "duplicate").Inc()
		} else {
			n++
			eventsTotal.WithLabelValues(t.fn, via, "submitted").Inc()
		}
	}
	return n, nil
}

// isNotFound reports whether err is S3's answer for a missing object or bucket.
func isNotFound(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return true
	}
	return false
}

// head tells whether key exists in the trigger's bucket now.
func (t *Trigger) head(ctx context.Context, key string) (bool, error) {
	_, err := t.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(t.cfg.Bucket), Key: aws.String(key)})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}
