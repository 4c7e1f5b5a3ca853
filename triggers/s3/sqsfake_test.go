package s3

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSQS is an in-process SQS endpoint holding one standard queue, speaking the
// protocol of aws-sdk-go-v2/service/sqs: AWS JSON 1.0 (POST /, X-Amz-Target:
// AmazonSQS.<Operation>, Content-Type: application/x-amz-json-1.0, JSON bodies), with
// errors as the service sends them to the query-compatible clients: the status of the
// error shape, {"__type": "com.amazonaws.sqs#<Shape>", "message": ...} and the awsQuery
// code in X-Amzn-Query-Error.
//
// Queue semantics: ReceiveMessage long-polls (it answers as soon as a message is
// visible, or after WaitTimeSeconds, or when the client goes away); a received message
// is invisible for the visibility timeout and then comes back with a new receipt
// handle; DeleteMessageBatch deletes by the latest receipt handle (an older handle of
// the message succeeds and deletes nothing, as SQS documents), a handle it never gave
// out is a failed entry. Tests inject failures: whole ReceiveMessage or
// DeleteMessageBatch calls, or one entry of a DeleteMessageBatch.
type fakeSQS struct {
	t   testing.TB
	srv *httptest.Server
	// QueueURL is the queue's URL: the server's address, an account and a name.
	QueueURL string
	// visibility is the queue's visibility timeout.
	visibility time.Duration
	quit       chan struct{}

	mu sync.Mutex
	// changed is closed (and replaced) when a message is sent.
	changed  chan struct{}
	msgs     []*fakeMessage
	byHandle map[string]*fakeMessage
	seq      int
	requests []fakeRequest
	batches  [][]string
	failRecv []fakeFailure
	failDel  []fakeFailure
	// failEntry maps a message id to the code its next delete entry fails with.
	failEntry map[string]string
	// beforeDelete, when set, is called (without mu) with each message a
	// DeleteMessageBatch is about to delete.
	beforeDelete func(m fakeMessage)
	// polls counts the ReceiveMessage calls waiting for a message.
	polls int
}

// fakeMessage is a message of the queue.
type fakeMessage struct {
	ID, Body, MD5 string
	// Handle is the receipt handle of the latest receive.
	Handle    string
	VisibleAt time.Time
	Receives  int
	Deleted   bool
}

// fakeRequest is a request the fake answered (or refused).
type fakeRequest struct {
	Op     string
	Method string
	Path   string
	Host   string
	Header http.Header
	Body   map[string]any
}

// fakeFailure is an error answer.
type fakeFailure struct {
	Status    int
	Type      string
	QueryCode string
	Message   string
}

// The errors SQS answers with, as its JSON protocol writes them.
var (
	sqsInternalError = fakeFailure{Status: 500, Type: "InternalFailure", QueryCode: "InternalFailure;Receiver",
		Message: "We encountered an internal error. Please try again."}
	sqsServiceUnavailable = fakeFailure{Status: 503, Type: "ServiceUnavailable", QueryCode: "ServiceUnavailable;Receiver",
		Message: "Service is unable to handle request."}
	sqsThrottled = fakeFailure{Status: 403, Type: "com.amazonaws.sqs#RequestThrottled", QueryCode: "RequestThrottled;Sender",
		Message: "Rate exceeded"}
	sqsNoQueue = fakeFailure{Status: 400, Type: "com.amazonaws.sqs#QueueDoesNotExist", QueryCode: "AWS.SimpleQueueService.NonExistentQueue;Sender",
		Message: "The specified queue does not exist."}
)

func newFakeSQS(t testing.TB, visibility time.Duration) *fakeSQS {
	t.Helper()
	f := &fakeSQS{
		t: t, visibility: visibility, quit: make(chan struct{}), changed: make(chan struct{}),
		byHandle: map[string]*fakeMessage{}, failEntry: map[string]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.QueueURL = f.srv.URL + "/123456789012/uploads"
	t.Cleanup(func() {
		close(f.quit)
		f.srv.Close()
	})
	return f
}

// send puts a message in the queue and returns its id.
func (f *fakeSQS) send(body string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	sum := md5.Sum([]byte(body))
	m := &fakeMessage{
		ID:   fmt.Sprintf("%08d-6a1f-4c3e-9d1b-%012d", f.seq, f.seq),
		Body: body, MD5: hex.EncodeToString(sum[:]),
	}
	f.msgs = append(f.msgs, m)
	close(f.changed)
	f.changed = make(chan struct{})
	return m.ID
}

// failReceives makes the next ReceiveMessage calls fail, one per failure, in order.
func (f *fakeSQS) failReceives(fs ...fakeFailure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failRecv = append(f.failRecv, fs...)
}

// failDeletes makes the next DeleteMessageBatch calls fail, one per failure, in order.
func (f *fakeSQS) failDeletes(fs ...fakeFailure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failDel = append(f.failDel, fs...)
}

// failDeleteOf makes the next delete entry of message id fail with code.
func (f *fakeSQS) failDeleteOf(id, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failEntry[id] = code
}

func (f *fakeSQS) setBeforeDelete(fn func(m fakeMessage)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeDelete = fn
}

// message returns a copy of message id.
func (f *fakeSQS) message(id string) fakeMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if m.ID == id {
			return *m
		}
	}
	f.t.Fatalf("fake SQS: no message %s", id)
	return fakeMessage{}
}

// remaining counts the messages not deleted.
func (f *fakeSQS) remaining() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.msgs {
		if !m.Deleted {
			n++
		}
	}
	return n
}

// calls returns the requests of operation op so far.
func (f *fakeSQS) calls(op string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.requests {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// waiting counts the ReceiveMessage calls waiting for a message.
func (f *fakeSQS) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

// received returns the message ids of every non-empty ReceiveMessage answer so far.
func (f *fakeSQS) received() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.batches))
	copy(out, f.batches)
	return out
}

func (f *fakeSQS) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, isSQS := strings.CutPrefix(target, "AmazonSQS.")
	req := fakeRequest{Op: op, Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header.Clone()}
	jsonErr := json.Unmarshal(raw, &req.Body)
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()

	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/" || !isSQS:
		f.fail(w, fakeFailure{Status: 400, Type: "UnknownOperationException", Message: "unknown operation " + r.Method + " " + r.URL.Path + " " + target})
		return
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.0":
		f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#InvalidAddress", Message: "Content-Type is " + r.Header.Get("Content-Type")})
		return
	case jsonErr != nil:
		f.fail(w, fakeFailure{Status: 400, Type: "SerializationException", Message: jsonErr.Error()})
		return
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="):
		f.fail(w, fakeFailure{Status: 400, Type: "MissingAuthenticationTokenException", Message: "Request is missing Authentication Token"})
		return
	}
	if q, _ := req.Body["QueueUrl"].(string); q != f.QueueURL {
		f.fail(w, sqsNoQueue)
		return
	}
	switch op {
	case "ReceiveMessage":
		f.receive(w, r, req.Body)
	case "DeleteMessageBatch":
		f.deleteBatch(w, raw)
	default:
		f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#UnsupportedOperation", QueryCode: "AWS.SimpleQueueService.UnsupportedOperation;Sender",
			Message: "the fake does not implement " + op})
	}
}

// fail answers with an error.
func (f *fakeSQS) fail(w http.ResponseWriter, e fakeFailure) {
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", newFakeID())
	if e.QueryCode != "" {
		h.Set("X-Amzn-Query-Error", e.QueryCode)
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Type, "message": e.Message})
}

func (f *fakeSQS) ok(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", newFakeID())
	_ = json.NewEncoder(w).Encode(v)
}

// intField reads an integer member of a request (JSON numbers decode as float64).
func intField(body map[string]any, name string, def int) (int, bool) {
	v, ok := body[name]
	if !ok {
		return def, true
	}
	n, ok := v.(float64)
	if !ok || n != float64(int(n)) {
		return 0, false
	}
	return int(n), true
}

func (f *fakeSQS) receive(w http.ResponseWriter, r *http.Request, body map[string]any) {
	max, ok1 := intField(body, "MaxNumberOfMessages", 1)
	wait, ok2 := intField(body, "WaitTimeSeconds", 0)
	vis, ok3 := intField(body, "VisibilityTimeout", -1)
	if !ok1 || !ok2 || !ok3 || max < 1 || max > 10 || wait < 0 || wait > 20 {
		f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#InvalidParameterValue", QueryCode: "InvalidParameterValue;Sender",
			Message: fmt.Sprintf("invalid MaxNumberOfMessages %v or WaitTimeSeconds %v", body["MaxNumberOfMessages"], body["WaitTimeSeconds"])})
		return
	}
	visibility := f.visibility
	if vis >= 0 {
		visibility = time.Duration(vis) * time.Second
	}
	f.mu.Lock()
	if len(f.failRecv) > 0 {
		e := f.failRecv[0]
		f.failRecv = f.failRecv[1:]
		f.mu.Unlock()
		f.fail(w, e)
		return
	}
	f.mu.Unlock()

	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		now := time.Now()
		f.mu.Lock()
		var out []map[string]string
		var ids []string
		next := deadline
		for _, m := range f.msgs {
			if m.Deleted {
				continue
			}
			if m.VisibleAt.After(now) {
				if m.VisibleAt.Before(next) {
					next = m.VisibleAt
				}
				continue
			}
			if len(out) == max {
				continue
			}
			m.Receives++
			m.Handle = fmt.Sprintf("AQEB%s/%d/%s", m.ID, m.Receives, newFakeID())
			m.VisibleAt = now.Add(visibility)
			f.byHandle[m.Handle] = m
			out = append(out, map[string]string{"MessageId": m.ID, "ReceiptHandle": m.Handle, "MD5OfBody": m.MD5, "Body": m.Body})
			ids = append(ids, m.ID)
		}
		changed := f.changed
		if len(out) > 0 {
			f.batches = append(f.batches, ids)
		}
		f.mu.Unlock()
		if len(out) > 0 {
			f.ok(w, map[string]any{"Messages": out})
			return
		}
		if !now.Before(deadline) {
			// SQS answers an empty receive with an empty object.
			f.ok(w, map[string]any{})
			return
		}
		timer := time.NewTimer(next.Sub(now))
		f.mu.Lock()
		f.polls++
		f.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
		case <-f.quit:
		}
		timer.Stop()
		f.mu.Lock()
		f.polls--
		f.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
		select {
		case <-f.quit:
			return
		default:
		}
	}
}

// batchEntryID is what SQS accepts as the id of a batch entry.
var batchEntryID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (f *fakeSQS) deleteBatch(w http.ResponseWriter, raw []byte) {
	var in struct {
		Entries []struct{ Id, ReceiptHandle string }
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		f.fail(w, fakeFailure{Status: 400, Type: "SerializationException", Message: err.Error()})
		return
	}
	switch {
	case len(in.Entries) == 0:
		f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#EmptyBatchRequest", QueryCode: "AWS.SimpleQueueService.EmptyBatchRequest;Sender",
			Message: "There should be at least one DeleteMessageBatchRequestEntry in the request."})
		return
	case len(in.Entries) > 10:
		f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#TooManyEntriesInBatchRequest", QueryCode: "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender",
			Message: fmt.Sprintf("Maximum number of entries per request are 10. You have sent %d.", len(in.Entries))})
		return
	}
	seen := map[string]bool{}
	for _, e := range in.Entries {
		if !batchEntryID.MatchString(e.Id) {
			f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#InvalidBatchEntryId", QueryCode: "AWS.SimpleQueueService.InvalidBatchEntryId;Sender",
				Message: "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."})
			return
		}
		if seen[e.Id] {
			f.fail(w, fakeFailure{Status: 400, Type: "com.amazonaws.sqs#BatchEntryIdsNotDistinct", QueryCode: "AWS.SimpleQueueService.BatchEntryIdsNotDistinct;Sender",
				Message: "Id " + e.Id + " repeated."})
			return
		}
		seen[e.Id] = true
	}

	type result struct {
		Id          string
		Code        string `json:",omitempty"`
		Message     string `json:",omitempty"`
		SenderFault *bool  `json:",omitempty"`
	}
	var ok, failed []result
	var del []*fakeMessage
	f.mu.Lock()
	if len(f.failDel) > 0 {
		e := f.failDel[0]
		f.failDel = f.failDel[1:]
		f.mu.Unlock()
		f.fail(w, e)
		return
	}
	hook := f.beforeDelete
	for _, e := range in.Entries {
		m := f.byHandle[e.ReceiptHandle]
		switch {
		case m == nil:
			sender := true
			failed = append(failed, result{Id: e.Id, Code: "ReceiptHandleIsInvalid", SenderFault: &sender,
				Message: fmt.Sprintf("The input receipt handle %q is not a valid receipt handle.", e.ReceiptHandle)})
		case f.failEntry[m.ID] != "":
			sender := false
			failed = append(failed, result{Id: e.Id, Code: f.failEntry[m.ID], SenderFault: &sender, Message: "We encountered an internal error. Please try again."})
			delete(f.failEntry, m.ID)
		default:
			ok = append(ok, result{Id: e.Id})
			if m.Handle == e.ReceiptHandle && !m.Deleted {
				del = append(del, m)
			}
		}
	}
	copies := make([]fakeMessage, len(del))
	for i, m := range del {
		copies[i] = *m
	}
	f.mu.Unlock()

	if hook != nil {
		for _, m := range copies {
			hook(m)
		}
	}
	f.mu.Lock()
	for _, m := range del {
		m.Deleted = true
	}
	f.mu.Unlock()
	if ok == nil {
		ok = []result{}
	}
	if failed == nil {
		failed = []result{}
	}
	f.ok(w, map[string]any{"Successful": ok, "Failed": failed})
}

func newFakeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fakeBucket is the S3 side of an sqs trigger: path-style ListObjectsV2 of an empty
// bucket, and HEAD of any key answering that it exists (so that a listing never takes
// an object that a notification brought for removed).
type fakeBucket struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []string
}

func newFakeBucket(t testing.TB, bucket string) *fakeBucket {
	t.Helper()
	b := &fakeBucket{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests = append(b.requests, r.Method+" "+r.URL.RequestURI())
		b.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/"+bucket && r.URL.Query().Get("list-type") == "2":
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`,
				bucket, r.URL.Query().Get("prefix"))
		case r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/"+bucket+"/"):
			w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
			w.Header().Set("Content-Length", "0")
			w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		default:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>not in the fake</Message></Error>`)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// lists counts the listings served.
func (b *fakeBucket) lists() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, r := range b.requests {
		if strings.HasPrefix(r, "GET ") {
			n++
		}
	}
	return n
}
