package s3

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/runtimetest"
	"github.com/fnhost/fnhost/internal/testlog"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
)

// sqsCall is one run of the function of an sqs bundle.
type sqsCall struct {
	typ, subject string
	rec          Record
}

// sqsBundle is an sqs trigger of one function (fn, recording its calls) on a real
// runtime and SQLite store, reading the queue of a fake SQS endpoint, with a fake empty
// bucket for its listings.
type sqsBundle struct {
	t      *testing.T
	fn     string
	bucket string
	st     *sqlite.Store
	rt     *runtime.Runtime
	sqs    *fakeSQS
	s3     *fakeBucket
	logs   *testlog.Buffer

	mu    sync.Mutex
	calls []sqsCall
	// expect maps a message id to the receipts (bucket/key → ETag) that must be stored
	// before the message is deleted.
	expect map[string]map[string]string
	// early lists the messages deleted before their invocations were stored.
	early []string
}

var sqsBundles atomic.Int64

// sqsVisibility is the fake queue's visibility timeout: short, so that what is not
// deleted comes back within a test.
const sqsVisibility = time.Second

func newSQSBundle(t *testing.T, opts sqlite.Options) *sqsBundle {
	t.Helper()
	b := &sqsBundle{
		t: t, fn: fmt.Sprintf("sqsfn%d", sqsBundles.Add(1)), bucket: "uploads",
		logs: &testlog.Buffer{}, expect: map[string]map[string]string{},
	}
	b.sqs = newFakeSQS(t, sqsVisibility)
	b.s3 = newFakeBucket(t, b.bucket)
	b.st = runtimetest.OpenStore(t, opts)
	b.sqs.setBeforeDelete(b.checkStored)
	handler := fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		c := sqsCall{typ: ev.Type, subject: ev.Subject}
		if err := json.Unmarshal(ev.Data, &c.rec); err != nil {
			return fnhost.Result{}, fnhost.Permanent(err)
		}
		b.mu.Lock()
		b.calls = append(b.calls, c)
		b.mu.Unlock()
		return fnhost.Result{}, nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trigger log:\n%s", b.logs.String())
		}
	})
	b.rt = runtimetest.Start(t, runtime.Config{
		Store: b.st, Workers: 8,
		Functions: []*runtime.Function{{Name: b.fn, Handler: handler, Timeout: 10 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 1, Backoff: "fixed", InitialInterval: 10 * time.Millisecond}}},
	})
	return b
}

// start builds the sqs trigger through the registry and runs it until the test ends,
// when it checks that Run returns nil soon after its context ends.
func (b *sqsBundle) start() {
	b.t.Helper()
	cfg := &manifest.S3Trigger{
		Mode: "sqs", QueueURL: b.sqs.QueueURL, Endpoint: b.s3.srv.URL, Bucket: b.bucket, Region: "us-east-1",
		AccessKey: "a", SecretKey: "b", Events: []string{"created"}, Reconcile: time.Hour,
	}
	tr := manifest.Trigger{Kind: Kind, S3: cfg}
	trig, err := triggers.New(triggers.Env{
		Function:   &manifest.Function{Name: b.fn, Triggers: []manifest.Trigger{tr}},
		Trigger:    tr,
		Submitter:  b.rt,
		Store:      b.st,
		Logger:     slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- trig.Run(ctx) }()
	b.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			b.t.Error("Run did not return within 10s of its context's end (a long poll not cancelled?)")
		}
	})
}

// checkStored is the fake's hook before it deletes a message: every receipt the
// message's records call for must be stored by then.
func (b *sqsBundle) checkStored(m fakeMessage) {
	b.mu.Lock()
	want := b.expect[m.ID]
	b.mu.Unlock()
	if len(want) == 0 {
		return
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	have, err := b.st.Receipts(context.Background(), b.fn, keys)
	for _, k := range keys {
		if err != nil || have[k] != want[k] {
			b.mu.Lock()
			b.early = append(b.early, fmt.Sprintf("message %s deleted while the receipt of %s is %q (want %q, error %v)", m.ID, k, have[k], want[k], err))
			b.mu.Unlock()
		}
	}
}

// send puts body in the queue; its deletion must wait for the receipts in want.
func (b *sqsBundle) send(body string, want map[string]string) string {
	id := b.sqs.send(body)
	b.mu.Lock()
	b.expect[id] = want
	b.mu.Unlock()
	return id
}

func (b *sqsBundle) got() []sqsCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// keys lists the object key of every call so far, sorted.
func (b *sqsBundle) keys() []string {
	var out []string
	for _, c := range b.got() {
		out = append(out, c.rec.S3.Object.Key)
	}
	sort.Strings(out)
	return out
}

// stored is the number of invocations of b.fn in the store.
func (b *sqsBundle) stored() int {
	b.t.Helper()
	page, err := b.st.List(context.Background(), store.Filter{Function: b.fn, Limit: 10000})
	if err != nil {
		b.t.Fatal(err)
	}
	return len(page.Items)
}

// waitFor polls until cond holds.
func (b *sqsBundle) waitFor(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("gave up waiting for %s; calls: %q, messages left: %d", what, b.keys(), b.sqs.remaining())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled waits until the queue is empty and every stored invocation has run, then
// checks that no message was deleted before its invocations were stored.
func (b *sqsBundle) settled() {
	b.t.Helper()
	b.waitFor("an empty queue", func() bool { return b.sqs.remaining() == 0 })
	n := b.stored()
	b.waitFor(fmt.Sprintf("%d calls", n), func() bool { return len(b.got()) >= n })
	// The handler of a duplicate would have run by now.
	time.Sleep(100 * time.Millisecond)
	b.checkEarly()
}

func (b *sqsBundle) checkEarly() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.early {
		b.t.Error(e)
	}
}

// sqsObject is one record of a notification as a test writes it.
type sqsObject struct {
	event string
	// key is the object's key; wire, when set, is how AWS writes it in the record
	// (otherwise AWS's encoding of key).
	key, wire string
	etag      string
	size      int64
	version   string
	// bucket overrides the bundle's bucket.
	bucket string
}

// awsKey encodes a key the way AWS S3 writes it into notifications: form encoding,
// "+" for a space, slashes kept.
func awsKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

var sqsSequencer atomic.Int64

// notification is an S3 event notification as AWS S3 sends it to SQS.
func (b *sqsBundle) notification(objs ...sqsObject) string {
	var recs []any
	for _, o := range objs {
		bucket := o.bucket
		if bucket == "" {
			bucket = b.bucket
		}
		wire := o.wire
		if wire == "" {
			wire = awsKey(o.key)
		}
		event := o.event
		if event == "" {
			event = "ObjectCreated:Put"
		}
		obj := map[string]any{"key": wire, "sequencer": fmt.Sprintf("0066%012X", sqsSequencer.Add(1))}
		if strings.HasPrefix(event, "ObjectCreated:") {
			obj["size"] = o.size
			obj["eTag"] = o.etag
		}
		if o.version != "" {
			obj["versionId"] = o.version
		}
		recs = append(recs, map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
			"eventTime": "2026-11-20T10:31:07.412Z", "eventName": event,
			"userIdentity":      map[string]string{"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
			"requestParameters": map[string]string{"sourceIPAddress": "203.0.113.7"},
			"responseElements":  map[string]string{"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "configurationId": "fnhost-uploads",
				"bucket": map[string]any{"name": bucket, "ownerIdentity": map[string]string{"principalId": "A3NL1KOZZKExample"}, "arn": "arn:aws:s3:::" + bucket},
				"object": obj,
			},
		})
	}
	body, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		b.t.Fatal(err)
	}
	return string(body)
}

// snsEnvelope wraps a message the way SNS delivers it to an SQS subscription without
// raw message delivery.
func snsEnvelope(t *testing.T, message string) string {
	body, err := json.Marshal(map[string]string{
		"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads-events", "Subject": "Amazon S3 Notification",
		"Message": message, "Timestamp": "2026-11-20T10:31:07.512Z", "SignatureVersion": "1",
		"Signature":      "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
		"SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
		"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:uploads-events:c9135db0-26c4-47ec-8998-413945fb5a96",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// s3TestEvent is the message S3 sends when a notification configuration is saved.
const s3TestEvent = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-20T10:30:55.101Z","Bucket":"uploads","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`

// receipt is the receipt key of key in the bundle's bucket.
func (b *sqsBundle) receipt(key string) string { return b.bucket + "/" + key }

// TestSQSNotifications sends S3 notifications as AWS writes them (keys form-encoded,
// one message with several records): each object version runs once with its key
// decoded, and each message is deleted after its invocations are stored.
func TestSQSNotifications(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	b.start()

	objs := []sqsObject{
		{key: "photos/2026 summer/a+b (1).jpg", wire: "photos/2026+summer/a%2Bb+%281%29.jpg", etag: "b1946ac92492d2347c6235b4d2611184", size: 6},
		{key: "ünï cödé/日本.txt", wire: "%C3%BCn%C3%AF+c%C3%B6d%C3%A9/%E6%97%A5%E6%9C%AC.txt", etag: "591785b794601e212b260e25925636fd", size: 11},
		{key: "dir/x%20y.txt", wire: "dir/x%2520y.txt", etag: "3b5d5c3712955042212316173ccf37be", size: 3},
		{key: "q?x=1&y#z.txt", etag: "0cc175b9c0f1b6a831c399e269772661", size: 1, version: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"},
		{key: "multi/part.bin", etag: "d41d8cd98f00b204e9800998ecf8427e-12", size: 62914560, event: "ObjectCreated:CompleteMultipartUpload"},
	}
	want := map[string]sqsObject{}
	for _, o := range objs {
		want[o.key] = o
	}
	// One record per message for the first three; the last two share a message, with a
	// removal (not watched: events are [created]) and a record of another bucket.
	for _, o := range objs[:3] {
		b.send(b.notification(o), map[string]string{b.receipt(o.key): o.etag})
	}
	b.send(b.notification(objs[3], sqsObject{key: "gone.txt", event: "ObjectRemoved:Delete"}, objs[4],
		sqsObject{key: "elsewhere.txt", bucket: "other", etag: "aa"}),
		map[string]string{b.receipt(objs[3].key): objs[3].etag, b.receipt(objs[4].key): objs[4].etag})

	b.waitFor("five calls", func() bool { return len(b.got()) >= len(objs) })
	b.settled()
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.key)
	}
	sort.Strings(keys)
	if got := b.keys(); !slices.Equal(got, keys) {
		t.Fatalf("calls for %q, want %q (once each)", got, keys)
	}
	if n := b.stored(); n != len(objs) {
		t.Fatalf("%d invocations stored, want %d", n, len(objs))
	}
	for _, c := range b.got() {
		o := want[c.rec.S3.Object.Key]
		r := c.rec
		if c.typ != "fnhost.s3.created" || c.subject != b.bucket+"/"+o.key {
			t.Errorf("%q: event type %q subject %q", o.key, c.typ, c.subject)
		}
		if r.EventSource != "aws:s3" || r.S3.Bucket.Name != b.bucket || r.S3.Object.ETag != o.etag || r.S3.Object.Size != o.size ||
			r.S3.Object.VersionID != o.version || r.S3.Object.Sequencer == "" || r.AWSRegion != "us-east-1" {
			t.Errorf("%q: record %+v", o.key, r)
		}
		wantEvent := o.event
		if wantEvent == "" {
			wantEvent = "ObjectCreated:Put"
		}
		if r.EventName != wantEvent {
			t.Errorf("%q: event name %q, want %q", o.key, r.EventName, wantEvent)
		}
	}
	have, err := b.st.Receipts(context.Background(), b.fn, []string{b.receipt(objs[0].key), b.receipt("gone.txt"), "other/elsewhere.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != 1 || have[b.receipt(objs[0].key)] != objs[0].etag {
		t.Fatalf("receipts %v, want only %s", have, b.receipt(objs[0].key))
	}
	// Each message was received once and deleted with the handle it came with.
	dels := b.sqs.calls("DeleteMessageBatch")
	var handles []string
	for _, d := range dels {
		for _, e := range d.Body["Entries"].([]any) {
			handles = append(handles, e.(map[string]any)["ReceiptHandle"].(string))
		}
	}
	if len(handles) != 4 {
		t.Fatalf("%d delete entries, want 4 (one per message)", len(handles))
	}
	for _, batch := range b.sqs.received() {
		for _, id := range batch {
			if m := b.sqs.message(id); m.Receives != 1 || !m.Deleted || !slices.Contains(handles, m.Handle) {
				t.Errorf("message %s: %+v, delete handles %q", id, m, handles)
			}
		}
	}
}

// TestSQSRedelivery sends the same notification twice (SQS delivers at least once): one
// invocation. An overwrite of the object (another ETag) runs again.
func TestSQSRedelivery(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	b.start()
	v1 := sqsObject{key: "reports/q3 final.pdf", etag: "7d793037a0760186574b0282f2f435e7", size: 5}
	body := b.notification(v1)
	want := map[string]string{b.receipt(v1.key): v1.etag}
	b.send(body, want)
	b.send(body, want)
	b.waitFor("the first call", func() bool { return len(b.got()) >= 1 })
	b.settled()
	// A third delivery, after the first two were handled.
	b.send(body, want)
	b.settled()
	if n, s := len(b.got()), b.stored(); n != 1 || s != 1 {
		t.Fatalf("one version delivered three times: %d calls, %d stored; want 1", n, s)
	}

	v2 := v1
	v2.etag, v2.size = "9e107d9d372bb6826bd81d3542a419d6", 43
	b.send(b.notification(v2), map[string]string{b.receipt(v1.key): v2.etag})
	b.waitFor("the call of the overwrite", func() bool { return len(b.got()) >= 2 })
	b.settled()
	calls := b.got()
	if len(calls) != 2 || b.stored() != 2 {
		t.Fatalf("%d calls, %d stored; want 2", len(calls), b.stored())
	}
	if calls[0].rec.S3.Object.ETag != v1.etag || calls[1].rec.S3.Object.ETag != v2.etag {
		t.Fatalf("ETags of the calls: %q then %q", calls[0].rec.S3.Object.ETag, calls[1].rec.S3.Object.ETag)
	}
}

// TestSQSThroughSNS reads notifications that S3 sent to an SNS topic that the queue
// subscribes to: the body is SNS's envelope with the S3 document as its Message.
func TestSQSThroughSNS(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	b.start()
	o := sqsObject{key: "inbox/a b+c.csv", etag: "e2fc714c4727ee9395f324cd2e7f331f", size: 4}
	b.send(snsEnvelope(t, b.notification(o)), map[string]string{b.receipt(o.key): o.etag})
	test := b.send(snsEnvelope(t, s3TestEvent), nil)
	b.waitFor("the call", func() bool { return len(b.got()) >= 1 })
	b.settled()
	calls := b.got()
	if len(calls) != 1 || calls[0].rec.S3.Object.Key != o.key || calls[0].rec.S3.Object.ETag != o.etag || b.stored() != 1 {
		t.Fatalf("calls %+v, %d stored; want one for %q", calls, b.stored(), o.key)
	}
	if m := b.sqs.message(test); !m.Deleted {
		t.Fatalf("the SNS-wrapped test event was not deleted: %+v", m)
	}
}

// TestSQSTestEvent deletes the s3:TestEvent message S3 sends when a notification is
// configured, and invokes nothing.
func TestSQSTestEvent(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	b.start()
	id := b.send(s3TestEvent, nil)
	b.settled()
	if m := b.sqs.message(id); !m.Deleted || m.Receives != 1 {
		t.Fatalf("test event: %+v, want deleted after one receive", m)
	}
	if n, s := len(b.got()), b.stored(); n != 0 || s != 0 {
		t.Fatalf("test event: %d calls, %d stored", n, s)
	}
}

// TestSQSGarbageStays leaves in the queue the messages that are no notification (for
// the queue's redrive policy), while the notifications of the same batch are handled
// and deleted.
func TestSQSGarbageStays(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	a := sqsObject{key: "a.txt", etag: "0cc175b9c0f1b6a831c399e269772661", size: 1}
	c := sqsObject{key: "c.txt", etag: "4a8a08f09d37b73795649038408b5f33", size: 1}
	// Queued before the trigger starts: the first receive takes them all.
	ida := b.send(b.notification(a), map[string]string{b.receipt(a.key): a.etag})
	garbage := b.send("hello, this is no JSON", nil)
	other := b.send(`{"orderId": 7, "status": "shipped"}`, nil)
	badKey := b.send(b.notification(sqsObject{key: "x", wire: "bad%zzkey", etag: "aa", size: 1}), nil)
	idc := b.send(b.notification(c), map[string]string{b.receipt(c.key): c.etag})
	b.start()

	b.waitFor("the calls of a.txt and c.txt", func() bool { return len(b.got()) >= 2 })
	if batches := b.sqs.received(); len(batches) == 0 || len(batches[0]) != 5 {
		t.Fatalf("receives %q, want all five messages in the first", batches)
	}
	// The three bad messages come back after the visibility timeout, and stay.
	for _, id := range []string{garbage, other, badKey} {
		b.waitFor("message "+id+" received again", func() bool { return b.sqs.message(id).Receives >= 2 })
	}
	for _, id := range []string{garbage, other, badKey} {
		if m := b.sqs.message(id); m.Deleted {
			t.Errorf("message %s (%q) was deleted", id, m.Body)
		}
	}
	for _, id := range []string{ida, idc} {
		if m := b.sqs.message(id); !m.Deleted || m.Receives != 1 {
			t.Errorf("notification %s: %+v, want deleted after one receive", id, m)
		}
	}
	if got := b.keys(); !slices.Equal(got, []string{"a.txt", "c.txt"}) || b.stored() != 2 {
		t.Fatalf("calls %q, %d stored; want a.txt and c.txt", got, b.stored())
	}
	if !strings.Contains(b.logs.String(), "is no S3 notification") {
		t.Error("the bad messages were not logged")
	}
	b.checkEarly()
}

// TestSQSReceiveFailures makes ReceiveMessage fail (server errors, throttling, a
// missing queue): the trigger backs off, tries again, and loses nothing.
func TestSQSReceiveFailures(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	o := sqsObject{key: "late.txt", etag: "900150983cd24fb0d6963f7d28e17f72", size: 3}
	id := b.send(b.notification(o), map[string]string{b.receipt(o.key): o.etag})
	// The SDK makes three attempts per call (it retries the 500 and the throttling, not
	// the missing queue), so these are two failed calls for the trigger.
	b.sqs.failReceives(sqsInternalError, sqsThrottled, sqsNoQueue, sqsServiceUnavailable, sqsServiceUnavailable, sqsServiceUnavailable)
	b.start()
	b.waitFor("the call", func() bool { return len(b.got()) >= 1 })
	b.settled()
	if n := len(b.sqs.calls("ReceiveMessage")); n < 7 {
		t.Errorf("%d ReceiveMessage requests, want at least 7 (6 failed)", n)
	}
	if m := b.sqs.message(id); !m.Deleted || m.Receives != 1 || len(b.got()) != 1 || b.stored() != 1 {
		t.Fatalf("message %+v, %d calls, %d stored", m, len(b.got()), b.stored())
	}
	logs := b.logs.String()
	if n := strings.Count(logs, "receiving from SQS failed"); n != 2 {
		t.Errorf("%d receive failures logged, want 2", n)
	}
	if !strings.Contains(logs, "AWS.SimpleQueueService.NonExistentQueue") {
		t.Error("the missing queue's error code is not in the log")
	}
}

// TestSQSDeletePartlyFails has DeleteMessageBatch report one entry failed: that message
// comes back after its visibility timeout, is a duplicate, and is deleted then.
func TestSQSDeletePartlyFails(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	x := sqsObject{key: "x.bin", etag: "9dd4e461268c8034f5c8564e155c67a6", size: 1}
	y := sqsObject{key: "y.bin", etag: "415290769594460e2e485922904f345d", size: 1}
	idx := b.send(b.notification(x), map[string]string{b.receipt(x.key): x.etag})
	idy := b.send(b.notification(y), map[string]string{b.receipt(y.key): y.etag})
	b.sqs.failDeleteOf(idx, "InternalError")
	b.start()
	b.waitFor("x.bin received again and deleted", func() bool { m := b.sqs.message(idx); return m.Deleted && m.Receives >= 2 })
	b.settled()
	if m := b.sqs.message(idy); !m.Deleted || m.Receives != 1 {
		t.Errorf("y: %+v, want deleted at once", m)
	}
	if got := b.keys(); !slices.Equal(got, []string{"x.bin", "y.bin"}) || b.stored() != 2 {
		t.Fatalf("calls %q, %d stored; want x.bin and y.bin once each", got, b.stored())
	}
	if !strings.Contains(b.logs.String(), "did not delete") {
		t.Error("the failed delete entry was not logged")
	}
}

// TestSQSDeleteFails makes whole DeleteMessageBatch calls fail: the messages come back,
// are duplicates, and are deleted on a later receive.
func TestSQSDeleteFails(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	o := sqsObject{key: "z.bin", etag: "fbade9e36a3f36d3d676c1b808451dd7", size: 1}
	id := b.send(b.notification(o), map[string]string{b.receipt(o.key): o.etag})
	b.sqs.failDeletes(sqsInternalError, sqsInternalError, sqsInternalError)
	b.start()
	b.waitFor("z.bin received again and deleted", func() bool { m := b.sqs.message(id); return m.Deleted && m.Receives >= 2 })
	b.settled()
	if n, s := len(b.got()), b.stored(); n != 1 || s != 1 {
		t.Fatalf("%d calls, %d stored; want 1", n, s)
	}
	if !strings.Contains(b.logs.String(), "receiving from SQS failed") {
		t.Error("the failed delete was not logged")
	}
}

// TestSQSStoreRefuses holds SQLite's write lock from another connection (a backup, an
// other process writing the file): the store cannot persist, so the message is not
// deleted; once the lock is gone it comes back and runs.
func TestSQSStoreRefuses(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{BusyTimeout: 200 * time.Millisecond})
	db, err := sql.Open("sqlite", b.st.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
		}
	}()

	o := sqsObject{key: "held.txt", etag: "45c48cce2e2d7fbdea1afc51c7c6ad26", size: 1}
	id := b.send(b.notification(o), map[string]string{b.receipt(o.key): o.etag})
	b.start()
	b.waitFor("the refused submission", func() bool {
		return strings.Contains(b.logs.String(), "could not persist an SQS notification")
	})
	// It stays in the queue and comes back while the lock is held.
	b.waitFor("the message received again", func() bool { return b.sqs.message(id).Receives >= 2 })
	if m := b.sqs.message(id); m.Deleted || len(b.sqs.calls("DeleteMessageBatch")) != 0 {
		t.Fatalf("message %+v deleted while the store refused it", m)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	locked = false
	b.waitFor("the call", func() bool { return len(b.got()) >= 1 })
	b.settled()
	if n, s := len(b.got()), b.stored(); n != 1 || s != 1 {
		t.Fatalf("%d calls, %d stored; want 1", n, s)
	}
}

// TestSQSRequestShape checks what the trigger asks of SQS: long polls of the longest
// wait and the largest batch on its queue URL, sent to the queue URL's host (not AWS)
// and signed for the trigger's region; deletes with the receipt handles it got.
func TestSQSRequestShape(t *testing.T) {
	t.Parallel()
	b := newSQSBundle(t, sqlite.Options{})
	o := sqsObject{key: "shape.txt", etag: "8277e0910d750195b448797616e091ad", size: 1}
	id := b.send(b.notification(o), map[string]string{b.receipt(o.key): o.etag})
	b.start()
	b.waitFor("the call", func() bool { return len(b.got()) >= 1 })
	b.settled()

	host := strings.TrimPrefix(b.sqs.srv.URL, "http://")
	recv := b.sqs.calls("ReceiveMessage")
	if len(recv) == 0 {
		t.Fatal("no ReceiveMessage")
	}
	for _, r := range recv {
		if r.Method != http.MethodPost || r.Path != "/" || r.Host != host {
			t.Errorf("ReceiveMessage sent as %s %s to %s, want POST / to %s", r.Method, r.Path, r.Host, host)
		}
		if r.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" || r.Header.Get("Content-Type") != "application/x-amz-json-1.0" ||
			r.Header.Get("X-Amzn-Query-Mode") != "true" {
			t.Errorf("ReceiveMessage headers %v", r.Header)
		}
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=a/") || !strings.Contains(auth, "/us-east-1/sqs/aws4_request") {
			t.Errorf("ReceiveMessage signed as %q", auth)
		}
		if r.Body["QueueUrl"] != b.sqs.QueueURL || r.Body["WaitTimeSeconds"] != float64(20) || r.Body["MaxNumberOfMessages"] != float64(10) {
			t.Errorf("ReceiveMessage body %v, want the queue URL, WaitTimeSeconds 20, MaxNumberOfMessages 10", r.Body)
		}
	}
	dels := b.sqs.calls("DeleteMessageBatch")
	if len(dels) != 1 {
		t.Fatalf("%d DeleteMessageBatch, want 1", len(dels))
	}
	d := dels[0]
	entries, _ := d.Body["Entries"].([]any)
	m := b.sqs.message(id)
	if d.Host != host || d.Header.Get("X-Amz-Target") != "AmazonSQS.DeleteMessageBatch" || d.Body["QueueUrl"] != b.sqs.QueueURL || len(entries) != 1 ||
		entries[0].(map[string]any)["ReceiptHandle"] != m.Handle {
		t.Fatalf("DeleteMessageBatch to %s: %v, want the queue URL and handle %q", d.Host, d.Body, m.Handle)
	}
	// The listings went to the S3 endpoint.
	if b.s3.lists() == 0 {
		t.Error("the bucket was not listed at start")
	}
}

// capture is an HTTP transport that keeps the requests and answers each with an empty
// receive.
type capture struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:    io.NopCloser(strings.NewReader(`{}`)),
		Request: r,
	}, nil
}

// TestSQSClientRegion checks where the client of a queue URL sends its requests and
// for which region it signs them: an AWS queue URL gives the region of its host, any
// other host is the endpoint itself.
func TestSQSClientRegion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		queue, region, host, endpoint string
	}{
		{"https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1", "sqs.eu-west-1.amazonaws.com", ""},
		{"https://sqs.ap-southeast-2.amazonaws.com/123456789012/q", "ap-southeast-2", "sqs.ap-southeast-2.amazonaws.com", ""},
		{"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "cn-north-1", "sqs.cn-north-1.amazonaws.com.cn", ""},
		{"https://sqs.eu-central-1.api.aws/123456789012/q", "eu-central-1", "sqs.eu-central-1.amazonaws.com", ""},
		{"https://eu-west-3.queue.amazonaws.com/123456789012/q", "eu-west-3", "sqs.eu-west-3.amazonaws.com", ""},
		{"http://127.0.0.1:9324/000000000000/q", "us-east-1", "127.0.0.1:9324", "http://127.0.0.1:9324"},
		{"https://sqs.internal.example:8443/q", "us-east-1", "sqs.internal.example:8443", "https://sqs.internal.example:8443"},
	} {
		tr := &capture{}
		ac := aws.Config{
			Region:      "us-east-1",
			Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
			HTTPClient:  &http.Client{Transport: tr},
		}
		client := newSQSClient(ac, c.queue)
		opts := client.Options()
		if opts.Region != c.region || aws.ToString(opts.BaseEndpoint) != c.endpoint {
			t.Errorf("%s: region %q endpoint %q, want %q and %q", c.queue, opts.Region, aws.ToString(opts.BaseEndpoint), c.region, c.endpoint)
		}
		if _, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(c.queue)}); err != nil {
			t.Fatalf("%s: %v", c.queue, err)
		}
		if len(tr.reqs) != 1 {
			t.Fatalf("%s: %d requests", c.queue, len(tr.reqs))
		}
		r := tr.reqs[0]
		if r.URL.Host != c.host {
			t.Errorf("%s: request sent to %s, want %s", c.queue, r.URL.Host, c.host)
		}
		if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "/"+c.region+"/sqs/aws4_request") {
			t.Errorf("%s: signed as %q, want region %s", c.queue, auth, c.region)
		}
	}
}

// TestSQSFakeWithSDK checks the fake against the SDK's client: long polls answered when
// a message arrives, message checksums, the visibility timeout with its new receipt
// handle, deletes by the latest handle only, and errors the SDK decodes into SQS's
// error types (and retries when they are throttling).
func TestSQSFakeWithSDK(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(t, 300*time.Millisecond)
	client := newSQSClient(aws.Config{
		Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), HTTPClient: &http.Client{},
	}, f.QueueURL)
	ctx := context.Background()
	longPoll := func() (*sqs.ReceiveMessageOutput, error) {
		return client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 20})
	}
	type result struct {
		out *sqs.ReceiveMessageOutput
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := longPoll()
		done <- result{out, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); f.waiting() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	body := `{"hello": "wörld"}`
	id := f.send(body)
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll was not answered when a message arrived")
	}
	if r.err != nil || len(r.out.Messages) != 1 || aws.ToString(r.out.Messages[0].Body) != body || aws.ToString(r.out.Messages[0].MessageId) != id {
		t.Fatalf("receive: %+v, %v", r.out, r.err)
	}
	first := aws.ToString(r.out.Messages[0].ReceiptHandle)

	// Invisible now; back after the visibility timeout with another handle.
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.QueueURL), MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 0 {
		t.Fatalf("short receive of an invisible message: %+v, %v", out, err)
	}
	out, err = longPoll()
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].ReceiptHandle) == first {
		t.Fatalf("receive after the visibility timeout: %+v, %v", out, err)
	}
	second := aws.ToString(out.Messages[0].ReceiptHandle)
	del := func(handles ...string) *sqs.DeleteMessageBatchOutput {
		t.Helper()
		in := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(f.QueueURL)}
		for i, h := range handles {
			in.Entries = append(in.Entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String(h)})
		}
		res, err := client.DeleteMessageBatch(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := del(first, "AQEBnever-issued"); len(res.Successful) != 1 || len(res.Failed) != 1 ||
		aws.ToString(res.Failed[0].Id) != "1" || aws.ToString(res.Failed[0].Code) != "ReceiptHandleIsInvalid" || !res.Failed[0].SenderFault {
		t.Fatalf("delete with a stale and an unknown handle: %+v", res)
	} else if f.message(id).Deleted {
		t.Fatal("a stale receipt handle deleted the message")
	}
	if res := del(second); len(res.Successful) != 1 || !f.message(id).Deleted {
		t.Fatalf("delete with the latest handle: %+v, %+v", res, f.message(id))
	}

	// Errors.
	_, err = client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.srv.URL + "/123456789012/nope")})
	var missing *sqstypes.QueueDoesNotExist
	if !errors.As(err, &missing) || missing.ErrorCode() != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Fatalf("receive from a missing queue: %v", err)
	}
	f.failReceives(sqsThrottled)
	before := len(f.calls("ReceiveMessage"))
	if _, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.QueueURL)}); err != nil {
		t.Fatalf("a throttled receive was not retried: %v", err)
	}
	if n := len(f.calls("ReceiveMessage")) - before; n != 2 {
		t.Fatalf("%d requests for a throttled receive, want 2", n)
	}

	// A long poll ends with its context.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := client.ReceiveMessage(cctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.QueueURL), WaitTimeSeconds: 20})
		done <- result{nil, err}
	}()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal("gave up waiting for " + what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("the long poll", func() bool { return f.waiting() == 1 })
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled long poll: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled long poll did not return")
	}
	// The fake's side of it ends too, and takes no message.
	waitUntil("the end of the cancelled long poll", func() bool { return f.waiting() == 0 })
	id = f.send(body)
	if out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.QueueURL)}); err != nil ||
		len(out.Messages) != 1 || aws.ToString(out.Messages[0].MessageId) != id {
		t.Fatalf("receive after a cancelled long poll: %+v, %v", out, err)
	}
}
