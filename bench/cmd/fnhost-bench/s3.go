package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/internal/s3test"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/runtime"
	"github.com/fnhost/fnhost/store"
	"github.com/fnhost/fnhost/store/sqlite"
	"github.com/fnhost/fnhost/triggers"
	s3trigger "github.com/fnhost/fnhost/triggers/s3"
)

const (
	// s3Objects is how many objects the latency sections put, one at a time.
	s3Objects = 300
	// s3Gap spaces the puts of the latency sections.
	s3Gap = 10 * time.Millisecond
	// s3Target is the target of the webhook's put → handler start p50.
	s3Target = 50 * time.Millisecond
	// s3PollObjects and s3PollEvery are the poll section's objects and interval: 100 ms
	// rather than the default 1 s, under which the interval alone is the figure (p50
	// half of it) and one object a second would take minutes. Where in a cycle of the
	// poll a put lands is random: the p50 of 250 objects varies by a few ms between runs.
	s3PollObjects = 250
	s3PollEvery   = 100 * time.Millisecond
	// s3IntakeN objects are put s3IntakeConns at a time in the intake section.
	s3IntakeN     = 10000
	s3IntakeConns = 32
	// s3Wait bounds the wait for one object's event in the latency sections.
	s3Wait = 10 * time.Second
)

// keyTimes records, per object ("bucket/key"), when something first happened to it, and
// lets a caller wait for one.
type keyTimes struct {
	mu      sync.Mutex
	at      map[string]time.Time
	calls   int
	waiters map[string]chan struct{}
}

func newKeyTimes() *keyTimes {
	return &keyTimes{at: map[string]time.Time{}, waiters: map[string]chan struct{}{}}
}

func (k *keyTimes) mark(key string, t time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if _, ok := k.at[key]; ok {
		return
	}
	k.at[key] = t
	if ch, ok := k.waiters[key]; ok {
		close(ch)
		delete(k.waiters, key)
	}
}

// wait reports whether key was marked within d.
func (k *keyTimes) wait(key string, d time.Duration) bool {
	k.mu.Lock()
	if _, ok := k.at[key]; ok {
		k.mu.Unlock()
		return true
	}
	ch, ok := k.waiters[key]
	if !ok {
		ch = make(chan struct{})
		k.waiters[key] = ch
	}
	k.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// count returns how many keys were marked, and how many times in all.
func (k *keyTimes) count() (keys, calls int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.at), k.calls
}

// last is the latest mark.
func (k *keyTimes) last() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	var t time.Time
	for _, at := range k.at {
		if at.After(t) {
			t = at
		}
	}
	return t
}

// delays returns, sorted, the time from each key's put to its mark, and warns about
// the keys that have none.
func (k *keyTimes) delays(put map[string]time.Time, what string) []time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]time.Duration, 0, len(put))
	for key, t := range put {
		if at, ok := k.at[key]; ok {
			out = append(out, at.Sub(t))
		}
	}
	if len(out) < len(put) {
		fmt.Fprintf(os.Stderr, "  warning: %d of %d objects never reached %s\n", len(put)-len(out), len(put), what)
	}
	if len(out) == 0 {
		fatal(fmt.Errorf("no object reached %s", what))
	}
	slices.Sort(out)
	return out
}

func pcts(d []time.Duration) string {
	return fmt.Sprintf("p50 %s, p99 %s", ms(d[len(d)/2]), ms(d[len(d)*99/100]))
}

func p50(d []time.Duration) time.Duration { return d[len(d)/2] }

// deltaP50 is how much later a's p50 is than b's.
func deltaP50(a, b []time.Duration) string {
	d := p50(a) - p50(b)
	if d < 0 {
		return fmt.Sprintf("−%s p50", ms(-d))
	}
	return fmt.Sprintf("+%s p50", ms(d))
}

// check marks a target as met or missed.
func check(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

// stampedSubmitter notes when each object's submission was persisted.
type stampedSubmitter struct {
	triggers.Submitter
	at *keyTimes
}

func (s stampedSubmitter) Submit(ctx context.Context, subs ...fnhost.Submission) ([]store.EnqueueResult, error) {
	res, err := s.Submitter.Submit(ctx, subs...)
	now := time.Now()
	if err == nil {
		for i, sub := range subs {
			if !res[i].Duplicate {
				s.at.mark(sub.Event.Subject, now)
			}
		}
	}
	return res, err
}

// s3Launch starts the S3 server of a section. When its binary is not installed it adds
// a row that says the section was skipped (the benchmark is no CI) and returns nil.
func s3Launch(kind, metric string, launch func() (*s3test.Server, error)) *s3test.Server {
	srv, err := launch()
	if errors.Is(err, s3test.ErrNoBinary) {
		fmt.Fprintf(os.Stderr, "  %v\n", err)
		add(row{metric, fmt.Sprintf("skipped: no %s binary (scripts/tools.sh installs it)", kind), "", "", ""})
		return nil
	}
	if err != nil {
		fatal(err)
	}
	return srv
}

// s3Client is a minio-go client for srv that keeps up to conns connections open.
func s3Client(srv *s3test.Server, conns int) *minio.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	c, err := minio.New(srv.Host(), &minio.Options{
		Creds: miniocreds.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region, Transport: tr,
	})
	if err != nil {
		fatal(err)
	}
	return c
}

// s3Conn is the trigger configuration that reaches bucket on srv.
func s3Conn(srv *s3test.Server, bucket, mode string) manifest.S3Trigger {
	return manifest.S3Trigger{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket,
		AccessKey: manifest.Secret(srv.AccessKey), SecretKey: manifest.Secret(srv.SecretKey),
		Events: []string{"created"}, Mode: mode, Interval: manifest.DefaultS3Interval, Reconcile: manifest.DefaultS3Reconcile,
	}
}

func makeBuckets(c *minio.Client, region string, names ...string) {
	for _, name := range names {
		if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: region}); err != nil {
			fatal(fmt.Errorf("make bucket %s: %w", name, err))
		}
	}
}

var s3Body = []byte(strings.Repeat("x", 256))

// put writes a small object and returns when the put began.
func put(c *minio.Client, bucket, key string) time.Time {
	t := time.Now()
	if _, err := c.PutObject(context.Background(), bucket, key, bytes.NewReader(s3Body), int64(len(s3Body)), minio.PutObjectOptions{}); err != nil {
		fatal(fmt.Errorf("put %s/%s: %w", bucket, key, err))
	}
	return t
}

// putMany writes n objects named prefix-NNNNN into bucket, conns at a time, and returns
// when the first put began and the last one ended.
func putMany(c *minio.Client, bucket, prefix string, n, conns int) (time.Time, time.Time) {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				put(c, bucket, fmt.Sprintf("%s-%05d", prefix, i))
			}
		}()
	}
	wg.Wait()
	return start, time.Now()
}

// warmUp puts objects named warmup-N into bucket until one reaches seen (the trigger
// is running and the server's notifications flow), then a few more.
func warmUp(c *minio.Client, bucket string, seen *keyTimes) {
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		key := fmt.Sprintf("warmup-%d", i)
		put(c, bucket, key)
		if seen.wait(bucket+"/"+key, time.Second) {
			break
		}
		if time.Now().After(deadline) {
			fatal(fmt.Errorf("no object put into bucket %s got through within 30 s", bucket))
		}
	}
	for i := range 5 {
		key := fmt.Sprintf("warmup-more-%d", i)
		put(c, bucket, key)
		seen.wait(bucket+"/"+key, s3Wait)
	}
}

// listen opens a loopback listener, so that its address can go into the server's
// configuration before anything serves it.
func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	return ln
}

// s3Fnhost is fnhost's side of an s3 section: a runtime on SQLite with one function,
// ingest, whose handler is wrapped and fed by an s3 trigger as the host does it.
type s3Fnhost struct {
	st     *sqlite.Store
	rt     *runtime.Runtime
	cancel context.CancelFunc
	done   chan error
}

// startS3 starts the function and its trigger cfg. The trigger mounts its webhook
// receiver on router (nil outside webhook mode) and, with persisted, notes when each
// submission was persisted.
func startS3(dir string, cfg manifest.S3Trigger, handler fnhost.Handler, router triggers.Router, persisted *keyTimes) *s3Fnhost {
	tr := manifest.Trigger{Kind: s3trigger.Kind, S3: &cfg}
	fn := &manifest.Function{Name: "ingest", Triggers: []manifest.Trigger{tr}}
	wrapped, err := triggers.Wrap(fn, handler)
	if err != nil {
		fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "fnhost.db"), sqlite.Options{})
	if err != nil {
		fatal(err)
	}
	rt, err := runtime.New(runtime.Config{
		Store: st, Workers: manifest.DefaultWorkers,
		Functions: []*runtime.Function{{Name: "ingest", Handler: wrapped, Timeout: 30 * time.Second,
			Retry: manifest.Retry{MaxAttempts: 3, InitialInterval: time.Second, MaxInterval: time.Minute}}},
	})
	if err != nil {
		fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		fatal(err)
	}
	var sub triggers.Submitter = rt
	if persisted != nil {
		sub = stampedSubmitter{Submitter: rt, at: persisted}
	}
	trig, err := triggers.New(triggers.Env{
		Function: fn, Trigger: tr, Submitter: sub, Store: st, Router: router,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &s3Fnhost{st: st, rt: rt, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- trig.Run(ctx) }()
	return f
}

// stored counts the invocations in the store.
func (f *s3Fnhost) stored() int64 {
	s, err := f.st.Stats(context.Background(), time.Now())
	if err != nil {
		fatal(err)
	}
	var n int64
	for _, c := range s.ByState {
		n += c
	}
	return n
}

func (f *s3Fnhost) stop() {
	f.cancel()
	if err := <-f.done; err != nil {
		fatal(err)
	}
	if err := f.rt.Stop(context.Background()); err != nil {
		fatal(err)
	}
	if err := f.st.Close(); err != nil {
		fatal(err)
	}
}

// recordStart is a handler that notes when it started, per object.
func recordStart(at *keyTimes) fnhost.Handler {
	return fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		at.mark(ev.Subject, time.Now())
		return fnhost.Result{}, nil
	})
}

// receiverTimes times the requests to fnhost's webhook receiver.
type receiverTimes struct {
	next http.Handler
	mu   sync.Mutex
	d    []time.Duration
}

func (rt *receiverTimes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := time.Now()
	rt.next.ServeHTTP(w, r)
	if r.Method == http.MethodPost {
		rt.mu.Lock()
		rt.d = append(rt.d, time.Since(t))
		rt.mu.Unlock()
	}
}

func (rt *receiverTimes) sorted() []time.Duration {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	d := slices.Clone(rt.d)
	slices.Sort(d)
	return d
}

// serve serves h on ln until the returned function is called.
func serve(ln net.Listener, h http.Handler) func() {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }
}

// bareWebhook is the baseline receiver: it notes when each notification arrives.
func bareWebhook(arrived *keyTimes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var n struct{ Key string }
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &n) == nil && n.Key != "" {
			arrived.mark(n.Key, now)
		}
	})
}

// setWebhook sends the created events of bucket to MinIO's webhook target id.
func setWebhook(c *minio.Client, bucket, id string) {
	qc := notification.NewConfig(notification.NewArn("minio", "sqs", "", id, "webhook"))
	qc.AddEvents(notification.ObjectCreatedAll)
	var cfg notification.Configuration
	cfg.AddQueue(qc)
	if err := c.SetBucketNotification(context.Background(), bucket, cfg); err != nil {
		fatal(fmt.Errorf("notifications of bucket %s: %w", bucket, err))
	}
}

// benchS3Webhook puts objects one at a time into MinIO, which notifies fnhost's webhook
// receiver, and times each from just before the put to the start of its handler. The
// baseline is the same MinIO notifying a bare net/http handler about another bucket, in
// turn with fnhost's: put → arrival of the notification.
func benchS3Webhook(dir string) {
	const metric = "s3 webhook (MinIO without queue_dir, which adds up to 3 s by design): put → handler start"
	bareLn, fnLn := listen(), listen()
	srv := s3Launch("minio", metric, func() (*s3test.Server, error) {
		// No queue_dir: with one MinIO stores each event and sends it from there within
		// about 3 s, by design.
		return s3test.LaunchMinIO(s3test.MinIOOptions{Webhooks: map[string]s3test.Webhook{
			"BARE":   {Endpoint: "http://" + bareLn.Addr().String() + "/", NoQueue: true},
			"FNHOST": {Endpoint: "http://" + fnLn.Addr().String() + s3trigger.WebhookPath, NoQueue: true},
		}})
	})
	if srv == nil {
		return
	}
	defer srv.Close()
	c := s3Client(srv, 4)
	makeBuckets(c, srv.Region, "bare", "fnhost")
	setWebhook(c, "bare", "BARE")

	arrived := newKeyTimes()
	stopBare := serve(bareLn, bareWebhook(arrived))
	defer stopBare()

	started, persisted := newKeyTimes(), newKeyTimes()
	mux := http.NewServeMux()
	recv := &receiverTimes{next: mux}
	stopFn := serve(fnLn, recv)
	defer stopFn()
	cfg := s3Conn(srv, "fnhost", "webhook")
	cfg.Target = "FNHOST" // the trigger adds itself to the bucket's notifications
	f := startS3(filepath.Join(dir, "webhook"), cfg, recordStart(started), mux, persisted)

	warmUp(c, "bare", arrived)
	warmUp(c, "fnhost", started)

	barePut, fnPut := map[string]time.Time{}, map[string]time.Time{}
	var putTook []time.Duration
	for i := range s3Objects {
		key := fmt.Sprintf("obj-%04d", i)
		t := put(c, "bare", key)
		putTook = append(putTook, time.Since(t))
		barePut["bare/"+key] = t
		arrived.wait("bare/"+key, s3Wait)
		time.Sleep(s3Gap)
		fnPut["fnhost/"+key] = put(c, "fnhost", key)
		started.wait("fnhost/"+key, s3Wait)
		time.Sleep(s3Gap)
	}
	f.stop()

	bare := arrived.delays(barePut, "the bare receiver")
	run := started.delays(fnPut, "a handler")
	sub := persisted.delays(fnPut, "the store")
	slices.Sort(putTook)
	fmt.Fprintf(os.Stderr, "  PutObject itself: %s; fnhost's receiver answered MinIO in %s\n", pcts(putTook), pcts(recv.sorted()))
	bareCell := pcts(bare) + " bare net/http webhook arrival"
	add(row{fmt.Sprintf("%s, %d objects one at a time", metric, s3Objects),
		pcts(run), bareCell, deltaP50(run, bare),
		fmt.Sprintf("p50 ≤ %d ms %s", s3Target.Milliseconds(), check(p50(run) <= s3Target))})
	add(row{fmt.Sprintf("s3 webhook (MinIO, no queue_dir): put → submission persisted, %d objects", s3Objects),
		pcts(sub), bareCell, deltaP50(sub, bare), ""})
}

// awsClient is an AWS SDK client for srv configured as the trigger configures its own.
func awsClient(srv *s3test.Server) *awss3.Client {
	return awss3.New(awss3.Options{
		Region: srv.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// listAll lists bucket with ListObjectsV2, every page, and returns its keys.
func listAll(c *awss3.Client, bucket string) []string {
	var keys []string
	pages := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1000)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			fatal(fmt.Errorf("list %s: %w", bucket, err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// barePoll is the poll baseline: ListObjectsV2 of bucket, then a pause of every, until
// ctx is done; it notes when each key is first listed.
func barePoll(ctx context.Context, c *awss3.Client, bucket string, every time.Duration, seen *keyTimes) {
	for ctx.Err() == nil {
		for _, k := range listAll(c, bucket) {
			seen.mark(bucket+"/"+k, time.Now())
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// benchS3Poll puts objects one at a time into versitygw, whose bucket a trigger in poll
// mode lists every 100 ms, and times each from just before the put to the start of its
// handler. The baseline is a bare ListObjectsV2 loop at the same interval over another
// bucket, in the same run: put → first listed.
func benchS3Poll(dir string) {
	metric := fmt.Sprintf("s3 poll (versitygw, interval %d ms; default 1 s): put → handler start", s3PollEvery.Milliseconds())
	srv := s3Launch("versitygw", metric, func() (*s3test.Server, error) {
		return s3test.LaunchVersityGW(s3test.VersityGWOptions{})
	})
	if srv == nil {
		return
	}
	defer srv.Close()
	c := s3Client(srv, 4)
	makeBuckets(c, srv.Region, "bare", "fnhost")

	seen := newKeyTimes()
	ctx, cancel := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() { defer close(polled); barePoll(ctx, awsClient(srv), "bare", s3PollEvery, seen) }()

	started, persisted := newKeyTimes(), newKeyTimes()
	cfg := s3Conn(srv, "fnhost", "poll")
	cfg.Interval = s3PollEvery
	f := startS3(filepath.Join(dir, "poll"), cfg, recordStart(started), nil, persisted)
	warmUp(c, "bare", seen)
	warmUp(c, "fnhost", started)

	barePut, fnPut := map[string]time.Time{}, map[string]time.Time{}
	for i := range s3PollObjects {
		key := fmt.Sprintf("obj-%04d", i)
		barePut["bare/"+key] = put(c, "bare", key)
		fnPut["fnhost/"+key] = put(c, "fnhost", key)
		seen.wait("bare/"+key, s3Wait)
		started.wait("fnhost/"+key, s3Wait)
		// A pause of random length, so that the puts fall anywhere in the polls' cycles.
		time.Sleep(rand.N(s3PollEvery))
	}
	cancel()
	<-polled
	f.stop()

	bare := seen.delays(barePut, "the bare listing")
	run := started.delays(fnPut, "a handler")
	sub := persisted.delays(fnPut, "the store")
	fmt.Fprintf(os.Stderr, "  put → submission persisted: %s\n", pcts(sub))
	add(row{fmt.Sprintf("%s, %d objects one at a time", metric, s3PollObjects),
		pcts(run), fmt.Sprintf("%s bare ListObjectsV2 every %d ms", pcts(bare), s3PollEvery.Milliseconds()),
		deltaP50(run, bare), ""})
}

// benchS3Intake puts 10 000 small objects into MinIO, 32 at a time, while fnhost takes
// their notifications and runs a no-op handler for each, and reports the objects
// processed per second from the first put to the end of the last handler. The baselines
// are the same MinIO taking 10 000 puts into a bucket without notifications, and
// notifying a bare net/http handler of 10 000 puts (first put → last arrival). Then a
// trigger starts on the bucket without notifications, as after a downtime, and submits
// its 10 000 objects from the start-up listing, beside a bare ListObjectsV2 of it.
func benchS3Intake(dir string) {
	metric := fmt.Sprintf("s3 intake (MinIO webhook, no queue_dir): %s small objects put %d at a time → handlers done", thousands(s3IntakeN), s3IntakeConns)
	bareLn, fnLn := listen(), listen()
	srv := s3Launch("minio", metric, func() (*s3test.Server, error) {
		return s3test.LaunchMinIO(s3test.MinIOOptions{Webhooks: map[string]s3test.Webhook{
			"BARE":   {Endpoint: "http://" + bareLn.Addr().String() + "/", NoQueue: true},
			"FNHOST": {Endpoint: "http://" + fnLn.Addr().String() + s3trigger.WebhookPath, NoQueue: true},
		}})
	})
	if srv == nil {
		return
	}
	defer srv.Close()
	c := s3Client(srv, s3IntakeConns)
	makeBuckets(c, srv.Region, "plain", "bare", "intake")
	setWebhook(c, "bare", "BARE")

	first, last := putMany(c, "plain", "obj", s3IntakeN, s3IntakeConns)
	raw := float64(s3IntakeN) / last.Sub(first).Seconds()
	bare := intakeBare(c, bareLn)
	rate, calls := intakeFnhost(filepath.Join(dir, "intake"), srv, c, fnLn)
	add(row{metric, fmt.Sprintf("%s, %s invocations", perSec(rate), thousands(int64(calls))),
		fmt.Sprintf("%s raw MinIO puts; %s notified to bare net/http", perSec(raw), perSec(bare)),
		fmt.Sprintf("%.2f raw, %.2f bare", rate/raw, rate/bare), ""})

	startupListing(filepath.Join(dir, "backlog"), srv, "plain")
}

// intakeRest describes how the notifications of the intake's puts kept up: how many
// had got through when the last put returned, and how fast the others came after.
func intakeRest(through int, first, putEnd, end time.Time) string {
	rest := s3IntakeN - through
	return fmt.Sprintf("%s puts; %d of %d through when the last put returned, the other %d in %.2f s (%s)",
		perSec(float64(s3IntakeN)/putEnd.Sub(first).Seconds()), through, s3IntakeN, rest,
		end.Sub(putEnd).Seconds(), perSec(float64(rest)/end.Sub(putEnd).Seconds()))
}

// intakeBare puts the intake's objects into a bucket whose notifications go to a bare
// receiver on ln, and returns the objects per second from the first put to the last
// arrival.
func intakeBare(c *minio.Client, ln net.Listener) float64 {
	arrived := newKeyTimes()
	stop := serve(ln, bareWebhook(arrived))
	defer stop()
	warmUp(c, "bare", arrived)
	nwarm, _ := arrived.count()
	first, putEnd := putMany(c, "bare", "obj", s3IntakeN, s3IntakeConns)
	through, _ := arrived.count()
	waitCount(arrived, s3IntakeN+nwarm, "bare receiver")
	end := arrived.last()
	fmt.Fprintf(os.Stderr, "  bare receiver: %s\n", intakeRest(through-nwarm, first, putEnd, end))
	return float64(s3IntakeN) / end.Sub(first).Seconds()
}

// intakeFnhost puts the intake's objects into a bucket whose notifications go to
// fnhost's receiver on ln, and returns the objects per second from the first put to the
// end of the last handler, and how many times the handler ran, which must be once per
// object.
func intakeFnhost(dir string, srv *s3test.Server, c *minio.Client, ln net.Listener) (float64, int) {
	warm, done := newKeyTimes(), newKeyTimes()
	handler := fnhost.HandlerFunc(func(ctx context.Context, ev fnhost.Event) (fnhost.Result, error) {
		if strings.Contains(ev.Subject, "/warmup-") {
			warm.mark(ev.Subject, time.Now())
		} else {
			done.mark(ev.Subject, time.Now())
		}
		return fnhost.Result{}, nil
	})
	mux := http.NewServeMux()
	recv := &receiverTimes{next: mux}
	stop := serve(ln, recv)
	defer stop()
	cfg := s3Conn(srv, "intake", "webhook")
	cfg.Target = "FNHOST"
	f := startS3(dir, cfg, handler, mux, nil)
	warmUp(c, "intake", warm)
	nwarm, _ := warm.count()

	first, putEnd := putMany(c, "intake", "obj", s3IntakeN, s3IntakeConns)
	through, _ := done.count()
	waitCount(done, s3IntakeN, "intake")
	end := done.last()
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show
	keys, calls := done.count()
	stored := f.stored() - int64(nwarm)
	f.stop()
	if keys != s3IntakeN || calls != s3IntakeN || stored != s3IntakeN {
		fatal(fmt.Errorf("s3 intake: %d objects put, %d ran (%d runs), %d invocations stored: want exactly %d", s3IntakeN, keys, calls, stored, s3IntakeN))
	}
	fmt.Fprintf(os.Stderr, "  fnhost: %s; its receiver answered in %s\n", intakeRest(through, first, putEnd, end), pcts(recv.sorted()))
	return float64(s3IntakeN) / end.Sub(first).Seconds(), calls
}

// startupListing starts a trigger on bucket, which holds the intake's objects and
// sends no notifications (as when they landed while fnhost was down), and adds the row
// of its start-up listing: from the start to the last submission persisted, beside a
// bare ListObjectsV2 of the bucket (the median of three).
func startupListing(dir string, srv *s3test.Server, bucket string) {
	var lists []time.Duration
	ac := awsClient(srv)
	for range 3 {
		t := time.Now()
		if n := len(listAll(ac, bucket)); n != s3IntakeN {
			fatal(fmt.Errorf("listing bucket %s: %d objects, want %d", bucket, n, s3IntakeN))
		}
		lists = append(lists, time.Since(t))
	}
	slices.Sort(lists)
	bareList := float64(s3IntakeN) / lists[1].Seconds()

	persisted, ran := newKeyTimes(), newKeyTimes()
	start := time.Now()
	f := startS3(dir, s3Conn(srv, bucket, "webhook"), recordStart(ran), http.NewServeMux(), persisted)
	waitCount(persisted, s3IntakeN, "start-up listing")
	subEnd := persisted.last()
	waitCount(ran, s3IntakeN, "start-up listing's handlers")
	runEnd := ran.last()
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show
	subKeys, _ := persisted.count()
	runKeys, runCalls := ran.count()
	stored := f.stored()
	f.stop()
	if subKeys != s3IntakeN || runKeys != s3IntakeN || runCalls != s3IntakeN || stored != s3IntakeN {
		fatal(fmt.Errorf("s3 start-up listing: %d objects, %d submitted, %d ran (%d runs), %d stored: want exactly %d", s3IntakeN, subKeys, runKeys, runCalls, stored, s3IntakeN))
	}
	subRate := float64(s3IntakeN) / subEnd.Sub(start).Seconds()
	add(row{fmt.Sprintf("s3 start-up listing (after a downtime): %s objects in the bucket → all submitted", thousands(s3IntakeN)),
		fmt.Sprintf("%s (all ran after %.2f s)", perSec(subRate), runEnd.Sub(start).Seconds()),
		fmt.Sprintf("%s bare ListObjectsV2, %d pages", perSec(bareList), (s3IntakeN+999)/1000),
		fmt.Sprintf("%.2f", subRate/bareList), ""})
}

// waitCount waits until at has n keys, and fails when it stops growing for 30 s.
func waitCount(at *keyTimes, n int, what string) {
	got, since := 0, time.Now()
	for {
		k, _ := at.count()
		if k >= n {
			return
		}
		if k > got {
			got, since = k, time.Now()
		}
		if time.Since(since) > 30*time.Second {
			fatal(fmt.Errorf("%s: %d of %d objects after 30 s without progress", what, k, n))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
