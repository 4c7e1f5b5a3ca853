// Package runtime is the executor: it claims persisted invocations from the store under a
// lease, runs their handlers within the global and per-function concurrency caps,
// records every attempt, schedules retries with backoff, starts continuations, and
// hands work back on shutdown so that nothing is lost.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/manifest"
	"github.com/fnhost/fnhost/store"
)

// ErrUnknownFunction is returned when a submission names a function the host does not have.
var ErrUnknownFunction = errors.New("unknown function")

// ErrStopped is returned by Submit once the runtime is shutting down.
var ErrStopped = errors.New("runtime is stopping")

var (
	errLeaseLost = errors.New("the invocation was cancelled or rescued while it ran")
	errShutdown  = errors.New("the host is shutting down")
)

// Function is what the executor needs to know of one function.
type Function struct {
	Name        string
	Handler     fnhost.Handler
	Timeout     time.Duration
	Retry       manifest.Retry
	Concurrency int
	Then        []string
	OnFailure   string
}

// Config configures a Runtime.
type Config struct {
	Store     store.Store
	Functions []*Function
	// Workers caps concurrent handlers across the host (default 32).
	Workers int
	// Lease is how long a claim holds without a heartbeat (default 30s).
	Lease time.Duration
	// Owner names this host in leases (default host-pid-random).
	Owner string
	// MaxLogBytes caps one attempt's captured log (default 64 KiB).
	MaxLogBytes int
	// Retention is how long finished invocations are kept; 0 keeps them forever.
	Retention time.Duration
	// PollInterval bounds how long ready work waits when no local event wakes the
	// dispatcher (default 1s).
	PollInterval time.Duration
	Logger       *slog.Logger
	// Metrics receives the executor's measurements; nil disables them.
	Metrics *Metrics
	// Queues maps each durable queue to the functions that consume it.
	Queues map[string][]string
}

// Runtime runs invocations. Create it with New, then Start and Stop it once.
type Runtime struct {
	cfg   Config
	st    store.Store
	fns   map[string]*Function
	log   *slog.Logger
	owner string
	m     *Metrics

	wake chan struct{}

	mu       sync.Mutex
	inflight map[string]*running // claimed and not yet completed in the store
	busy     int                 // handlers holding a worker slot
	busyFn   map[string]int      // the same, per function
	ready    []*running          // claimed ahead, waiting for a slot (functions without a cap)
	// more is set when the last claim filled all the room it asked for: the store may
	// hold more ready work, so a freed slot should look for it at once.
	more     bool
	nextWake time.Time
	waiters  map[string][]chan *fnhost.Invocation

	stopping    atomic.Bool
	stopCh      chan struct{} // closed when Stop begins: no more claims
	hbStop      chan struct{} // closed when the handlers have drained
	runCtx      context.Context
	runCancel   context.CancelCauseFunc
	completions chan store.Completion
	workers     sync.WaitGroup
	loops       sync.WaitGroup
	completerWG sync.WaitGroup
	timer       *time.Timer

	started  time.Time
	leader   atomic.Bool
	leaderID atomic.Value // string
}

type running struct {
	inv      *fnhost.Invocation
	cancel   context.CancelCauseFunc
	ev       *fnhost.Event // the decoded event, when the runtime has it at hand
	claimed  time.Time
	started  time.Time
	released bool
	lost     bool // cancelled or rescued before it started
}

// New checks the configuration and returns a runtime that is not started yet.
func New(cfg Config) (*Runtime, error) {
	if cfg.Store == nil {
		return nil, errors.New("runtime: no store")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.MaxLogBytes <= 0 {
		cfg.MaxLogBytes = 64 << 10
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), fnhost.NewID()[20:])
	}
	fns := make(map[string]*Function, len(cfg.Functions))
	for _, f := range cfg.Functions {
		if f.Handler == nil {
			return nil, fmt.Errorf("runtime: function %q has no handler", f.Name)
		}
		if f.Retry.MaxAttempts <= 0 {
			f.Retry.MaxAttempts = 1
		}
		fns[f.Name] = f
	}
	for _, f := range cfg.Functions {
		for _, c := range append(slices.Clone(f.Then), f.OnFailure) {
			if _, ok := fns[c]; c != "" && !ok {
				return nil, fmt.Errorf("runtime: function %q continues with unknown function %q", f.Name, c)
			}
		}
	}
	r := &Runtime{
		cfg:         cfg,
		st:          cfg.Store,
		fns:         fns,
		log:         cfg.Logger,
		owner:       cfg.Owner,
		m:           cfg.Metrics,
		wake:        make(chan struct{}, 1),
		inflight:    map[string]*running{},
		busyFn:      map[string]int{},
		waiters:     map[string][]chan *fnhost.Invocation{},
		stopCh:      make(chan struct{}),
		hbStop:      make(chan struct{}),
		completions: make(chan store.Completion, cfg.Workers*4),
	}
	r.runCtx, r.runCancel = context.WithCancelCause(context.Background())
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	return r, nil
}

// Owner is the name this runtime holds leases under.
func (r *Runtime) Owner() string { return r.owner }

// Function returns the named function.
func (r *Runtime) Function(name string) (*Function, bool) {
	f, ok := r.fns[name]
	return f, ok
}

// Start rescues what a previous run left behind and starts the dispatcher, the
// completion writer, the heartbeat and maintenance. It returns at once.
func (r *Runtime) Start(ctx context.Context) error {
	r.started = time.Now().UTC()
	if n, err := r.st.Rescue(ctx, time.Now()); err != nil {
		return fmt.Errorf("runtime: rescue at start: %w", err)
	} else if n > 0 {
		r.log.Info("rescued invocations left running by a stopped host", "count", n)
	}
	r.completerWG.Add(1)
	go r.completer()
	r.loops.Add(2)
	go r.dispatcher()
	go r.maintenance()
	r.completerWG.Add(2)
	go r.heartbeat()
	go r.presence()
	r.poke()
	return nil
}

// Stop stops claiming, lets running handlers finish until ctx is done, then cancels
// the rest and releases them to pending so that another host, or the next start, runs
// them. Completed attempts are flushed to the store before Stop returns.
func (r *Runtime) Stop(ctx context.Context) error {
	if !r.stopping.CompareAndSwap(false, true) {
		return nil
	}
	close(r.stopCh)
	r.loops.Wait()

	drained := make(chan struct{})
	go func() { r.workers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		r.releaseRunning()
		<-drained
	}
	r.releaseReady()
	r.resign()
	close(r.hbStop)
	close(r.completions)
	r.completerWG.Wait()
	r.runCancel(errShutdown)
	return nil
}

// releaseReady hands back the invocations claimed ahead that never started.
func (r *Runtime) releaseReady() {
	now := time.Now().UTC()
	attempts := map[string]fnhost.Attempt{}
	r.mu.Lock()
	for _, run := range r.ready {
		if !run.lost {
			attempts[run.inv.ID] = fnhost.Attempt{
				Number: run.inv.Attempt, StartedAt: run.claimed, FinishedAt: now, Outcome: fnhost.OutcomeReleased,
				Error: "the host shut down before the attempt started; it will run again", Owner: r.owner,
			}
		}
		delete(r.inflight, run.inv.ID)
	}
	r.ready = nil
	r.mu.Unlock()
	if len(attempts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.st.Release(ctx, r.owner, attempts, now); err != nil {
		r.log.Error("release claimed invocations at shutdown", "err", err, "count", len(attempts))
	}
}

// releaseRunning hands the invocations whose handlers are still running back to the
// store, then cancels the handlers.
func (r *Runtime) releaseRunning() {
	now := time.Now().UTC()
	attempts := map[string]fnhost.Attempt{}
	r.mu.Lock()
	for id, run := range r.inflight {
		if run.started.IsZero() {
			continue
		}
		run.released = true
		attempts[id] = fnhost.Attempt{
			Number: run.inv.Attempt, StartedAt: run.started, FinishedAt: now,
			DurationMS: ms(now.Sub(run.started)), Outcome: fnhost.OutcomeReleased,
			Error: "the host shut down before the attempt finished; it will run again", Owner: r.owner,
		}
	}
	r.mu.Unlock()
	if len(attempts) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.st.Release(ctx, r.owner, attempts, now); err != nil {
			r.log.Error("release running invocations at shutdown", "err", err, "count", len(attempts))
		} else {
			r.log.Info("released running invocations at shutdown", "count", len(attempts))
		}
		cancel()
	}
	r.mu.Lock()
	for _, run := range r.inflight {
		if run.released && run.cancel != nil {
			run.cancel(errShutdown)
		}
	}
	r.mu.Unlock()
}

// Submit persists invocations; when it returns without error they are durable. A
// function with `then` continuations gets its chain created as awaiting invocations in
// the same write.
func (r *Runtime) Submit(ctx context.Context, subs ...fnhost.Submission) ([]store.EnqueueResult, error) {
	if r.stopping.Load() {
		return nil, ErrStopped
	}
	now := time.Now().UTC()
	news := make([]store.NewInvocation, 0, len(subs))
	roots := make([]int, 0, len(subs))
	var earliest time.Time
	for _, s := range subs {
		if _, ok := r.fns[s.Function]; !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownFunction, s.Function)
		}
		ni, err := r.newInvocation(s, now)
		if err != nil {
			return nil, err
		}
		roots = append(roots, len(news))
		news = r.expand(news, ni, []string{s.Function})
		if ni.RunAt.After(now) && (earliest.IsZero() || ni.RunAt.Before(earliest)) {
			earliest = ni.RunAt
		}
	}
	res, err := r.st.Enqueue(ctx, news)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	out := make([]store.EnqueueResult, len(roots))
	for i, idx := range roots {
		out[i] = res[idx]
		if r.m != nil && !res[idx].Duplicate {
			r.m.submitted.WithLabelValues(news[idx].Function, news[idx].Trigger).Inc()
		}
	}
	if !earliest.IsZero() {
		r.wakeAt(earliest)
	}
	r.poke()
	return out, nil
}

func (r *Runtime) newInvocation(s fnhost.Submission, now time.Time) (store.NewInvocation, error) {
	fn := r.fns[s.Function]
	if s.ID == "" {
		s.ID = fnhost.NewIDAt(now)
	}
	completeEvent(&s)
	ev, err := json.Marshal(s.Event)
	if err != nil {
		return store.NewInvocation{}, fmt.Errorf("submit: encode event: %w", err)
	}
	return store.NewInvocation{
		ID: s.ID, Function: s.Function, Trigger: s.Trigger, Event: ev,
		DedupKey: s.DedupKey, Priority: s.Priority, MaxAttempts: fn.Retry.MaxAttempts,
		RunAt: s.RunAt, CreatedAt: now,
		ReceiptKey: s.ReceiptKey, ReceiptVersion: s.ReceiptVersion,
	}, nil
}

// completeEvent gives a submission without a whole event one made around its data.
func completeEvent(s *fnhost.Submission) {
	if s.Event.ID == "" {
		s.Event = fnhost.NewEvent("fnhost/"+s.Trigger, "fnhost.invoke", "", s.Event.Data)
	}
}

// expand appends ni and the awaiting invocations of its `then` chain. A function that
// already appears in the chain is not added again, so a cycle cannot grow forever.
func (r *Runtime) expand(out []store.NewInvocation, ni store.NewInvocation, chain []string) []store.NewInvocation {
	out = append(out, ni)
	for _, name := range r.fns[ni.Function].Then {
		if slices.Contains(chain, name) {
			continue
		}
		child := store.NewInvocation{
			ID: fnhost.NewIDAt(ni.CreatedAt), Function: name, Trigger: string(fnhost.ContinueThen),
			MaxAttempts: r.fns[name].Retry.MaxAttempts, Awaiting: true,
			ParentID: ni.ID, Continuation: fnhost.ContinueThen, CreatedAt: ni.CreatedAt,
		}
		out = r.expand(out, child, append(chain, name))
	}
	return out
}

// Wait blocks until the invocation reaches a terminal state or ctx is done. It learns of
// local completions at once and of other hosts' by polling the store.
func (r *Runtime) Wait(ctx context.Context, id string) (*fnhost.Invocation, error) {
	ch := r.await(id)
	defer r.unwait(id, ch)
	return r.waitOn(ctx, id, ch, true)
}

func (r *Runtime) await(id string) chan *fnhost.Invocation {
	ch := make(chan *fnhost.Invocation, 1)
	r.mu.Lock()
	r.waiters[id] = append(r.waiters[id], ch)
	r.mu.Unlock()
	return ch
}

// waitOn waits for a notification on ch, reading the store now (when check is set) and
// at every poll interval in case another host finishes the invocation.
func (r *Runtime) waitOn(ctx context.Context, id string, ch chan *fnhost.Invocation, check bool) (*fnhost.Invocation, error) {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		if check {
			inv, err := r.st.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			if inv.State.Terminal() {
				return inv, nil
			}
		}
		check = true
		select {
		case inv := <-ch:
			return inv, nil
		case <-poll.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Invoke persists an invocation and waits up to wait for it to finish. When a worker
// slot is free, this host runs it at once: the invocation is written already claimed,
// which saves the round trip through the queue. When wait runs out first, Invoke
// returns the invocation as it stands, not yet terminal.
func (r *Runtime) Invoke(ctx context.Context, sub fnhost.Submission, wait time.Duration) (*fnhost.Invocation, error) {
	fn, ok := r.fns[sub.Function]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownFunction, sub.Function)
	}
	if r.stopping.Load() {
		return nil, ErrStopped
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if !sub.RunAt.IsZero() || !r.acquire(fn) {
		res, err := r.Submit(ctx, sub)
		if err != nil {
			return nil, err
		}
		return r.waitOrCurrent(ctx, wctx, res[0].ID)
	}
	now := time.Now().UTC()
	completeEvent(&sub)
	ni, err := r.newInvocation(sub, now)
	if err != nil {
		r.releaseSlot(fn.Name)
		return nil, err
	}
	ni.Owner, ni.LeaseUntil = r.owner, now.Add(r.cfg.Lease)
	started := now
	inv := &fnhost.Invocation{
		ID: ni.ID, Function: ni.Function, State: fnhost.StateRunning, Attempt: 1, MaxAttempts: ni.MaxAttempts,
		Trigger: ni.Trigger, DedupKey: ni.DedupKey, Priority: ni.Priority, RunAt: now, CreatedAt: now,
		StartedAt: &started, Event: ni.Event,
	}
	ch := r.await(ni.ID)
	defer r.unwait(ni.ID, ch)
	if ni.DedupKey == "" && ni.ReceiptKey == "" && len(fn.Then) == 0 {
		return r.runFirst(ctx, wctx, &running{inv: inv, ev: &sub.Event, claimed: now}, ni, ch)
	}
	res, err := r.st.Enqueue(ctx, r.expand(nil, ni, []string{fn.Name}))
	if err != nil || res[0].Duplicate {
		r.releaseSlot(fn.Name)
		if err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
		return r.waitOrCurrent(ctx, wctx, res[0].ID)
	}
	if r.m != nil {
		r.m.submitted.WithLabelValues(ni.Function, ni.Trigger).Inc()
	}
	r.start(inv)
	got, err := r.waitOn(wctx, ni.ID, ch, false)
	if err != nil && ctx.Err() == nil {
		return r.st.Get(ctx, ni.ID)
	}
	return got, err
}

// inlineBudget is how long a synchronous invocation may run before it is stored. An
// attempt that ends within it is stored once, finished; a longer one is stored as
// running when the budget runs out, so that it is leased, visible and cancellable.
const inlineBudget = 100 * time.Millisecond

// runFirst runs the first attempt of a synchronous invocation before storing it. The
// caller has not been answered yet, so nothing acknowledged is lost if the host dies
// meanwhile; what it saves is one write per short invocation.
func (r *Runtime) runFirst(ctx, wctx context.Context, run *running, ni store.NewInvocation, ch chan *fnhost.Invocation) (*fnhost.Invocation, error) {
	type outcome struct {
		c  store.Completion
		ok bool
	}
	inv := run.inv
	done := make(chan outcome, 1)
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		c, ok := r.attempt(run)
		done <- outcome{c, ok}
		if next := r.handOver(inv.Function); next != nil {
			r.workers.Add(1)
			go r.work(next)
		}
	}()
	budget := time.NewTimer(inlineBudget)
	defer budget.Stop()
	select {
	case o := <-done:
		if !o.ok {
			return nil, ErrStopped
		}
		c := o.c
		ni.Completion = &c
		// The attempt has run: record it even if the caller has gone meanwhile.
		if _, err := r.st.Enqueue(context.WithoutCancel(ctx), []store.NewInvocation{ni}); err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
		if r.m != nil {
			r.m.submitted.WithLabelValues(ni.Function, ni.Trigger).Inc()
		}
		if !c.State.Terminal() {
			r.wakeAt(c.RunAt)
			return r.waitOn(wctx, inv.ID, ch, true)
		}
		return finished(inv, c, time.Now().UTC()), nil
	case <-budget.C:
	}
	// Still running: store it as running under this host's lease, then let the
	// completer record the end as for any claimed invocation.
	if _, err := r.st.Enqueue(context.WithoutCancel(ctx), []store.NewInvocation{ni}); err != nil {
		r.mu.Lock()
		if run.cancel != nil {
			run.cancel(errLeaseLost)
		}
		r.mu.Unlock()
		return nil, fmt.Errorf("submit: %w", err)
	}
	if r.m != nil {
		r.m.submitted.WithLabelValues(ni.Function, ni.Trigger).Inc()
	}
	r.mu.Lock()
	r.inflight[inv.ID] = run
	r.mu.Unlock()
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		if o := <-done; o.ok {
			r.completions <- o.c
		}
	}()
	got, err := r.waitOn(wctx, inv.ID, ch, false)
	if err != nil && ctx.Err() == nil {
		return r.st.Get(ctx, inv.ID)
	}
	return got, err
}

// finished is the invocation inv as its completion c leaves it.
func finished(inv *fnhost.Invocation, c store.Completion, now time.Time) *fnhost.Invocation {
	out := *inv
	out.State = c.State
	out.Output = c.Output
	if c.Error != "" {
		e := c.Error
		out.Error = &e
	}
	out.FinishedAt = &now
	out.LeaseOwner, out.LeaseUntil = "", nil
	out.Attempts = []fnhost.Attempt{c.Attempt}
	return &out
}

func (r *Runtime) waitOrCurrent(ctx, wctx context.Context, id string) (*fnhost.Invocation, error) {
	inv, err := r.Wait(wctx, id)
	if err != nil && ctx.Err() == nil {
		return r.st.Get(ctx, id)
	}
	return inv, err
}

// acquire takes a worker slot for fn if one is free.
func (r *Runtime) acquire(fn *Function) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy >= r.cfg.Workers || (fn.Concurrency > 0 && r.busyFn[fn.Name] >= fn.Concurrency) {
		return false
	}
	r.busy++
	r.busyFn[fn.Name]++
	return true
}

func (r *Runtime) releaseSlot(function string) {
	r.mu.Lock()
	r.busy--
	r.busyFn[function]--
	r.mu.Unlock()
}

func (r *Runtime) unwait(id string, ch chan *fnhost.Invocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(r.waiters, id)
	} else {
		r.waiters[id] = ws
	}
}

// Retry runs a finished invocation again with the function's full attempt budget.
func (r *Runtime) Retry(ctx context.Context, id string) (*fnhost.Invocation, error) {
	inv, err := r.st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	extra := 1
	if fn, ok := r.fns[inv.Function]; ok {
		extra = fn.Retry.MaxAttempts
	}
	inv, err = r.st.Retry(ctx, id, time.Now().UTC(), extra)
	if err == nil {
		r.poke()
	}
	return inv, err
}

// Cancel cancels an invocation that has not finished; a running handler is stopped at
// its next heartbeat.
func (r *Runtime) Cancel(ctx context.Context, id string) (*fnhost.Invocation, error) {
	inv, err := r.st.Cancel(ctx, id, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if run, ok := r.inflight[id]; ok {
		run.lost = true
		if run.cancel != nil {
			run.cancel(errLeaseLost)
		}
	}
	r.mu.Unlock()
	return inv, nil
}

// InFlight is the number of handlers running now.
func (r *Runtime) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy
}

func (r *Runtime) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// wakeAt makes the dispatcher look for work at t (a delayed invocation or a retry).
func (r *Runtime) wakeAt(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.nextWake.IsZero() && !t.Before(r.nextWake) && r.nextWake.After(time.Now()) {
		return
	}
	r.nextWake = t
	r.timer.Reset(time.Until(t))
}

func (r *Runtime) dispatcher() {
	defer r.loops.Done()
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	others := r.notifications()
	for {
		if r.stopping.Load() {
			return
		}
		if r.claimRound() > 0 {
			continue
		}
		select {
		case <-r.stopCh:
			return
		case <-r.wake:
		case <-others:
		case <-poll.C:
		case <-r.timer.C:
			r.mu.Lock()
			r.nextWake = time.Time{}
			r.mu.Unlock()
		}
	}
}

// claimRound claims work for the free worker slots and starts it. For functions without
// a concurrency cap it also claims as much again ahead, into the ready queue, so that a
// worker that finishes takes its next invocation at once instead of waiting for a
// claim. It returns how many invocations it claimed.
func (r *Runtime) claimRound() int {
	r.mu.Lock()
	free := r.cfg.Workers - r.busy
	room := r.cfg.Workers + r.prefetch() - r.busy - len(r.ready)
	if room <= 0 {
		r.mu.Unlock()
		return 0
	}
	var open []string
	type capped struct {
		name  string
		slots int
	}
	var caps []capped
	for name, fn := range r.fns {
		if fn.Concurrency <= 0 {
			open = append(open, name)
		} else if s := fn.Concurrency - r.busyFn[name]; s > 0 {
			caps = append(caps, capped{name, s})
		}
	}
	r.mu.Unlock()

	claimed, full := 0, false
	claim := func(fns []string, limit int) {
		if limit <= 0 || len(fns) == 0 {
			return
		}
		now := time.Now().UTC()
		invs, err := r.st.Claim(r.runCtx, store.ClaimRequest{
			Owner: r.owner, Now: now, LeaseUntil: now.Add(r.cfg.Lease), Limit: limit, Functions: fns,
		})
		if err != nil {
			if !r.stopping.Load() {
				r.log.Error("claim", "err", err)
			}
			return
		}
		now = time.Now().UTC()
		var launch []*running
		r.mu.Lock()
		for _, inv := range invs {
			run := &running{inv: inv, claimed: now}
			r.inflight[inv.ID] = run
			if r.busy < r.cfg.Workers {
				r.busy++
				r.busyFn[inv.Function]++
				launch = append(launch, run)
			} else {
				r.ready = append(r.ready, run)
			}
		}
		r.mu.Unlock()
		for _, run := range launch {
			r.workers.Add(1)
			go r.work(run)
		}
		claimed += len(invs)
		free -= len(invs)
		if len(invs) == limit {
			full = true
		}
	}
	slices.Sort(open)
	claim(open, room)
	for _, c := range caps {
		claim([]string{c.name}, min(c.slots, free))
	}
	r.mu.Lock()
	r.more = full
	r.mu.Unlock()
	return claimed
}

// prefetch is how many invocations of functions without a cap are claimed ahead of
// free slots: enough that workers do not wait for a claim (which waits for the store's
// fsync), at least 32 however few workers there are.
func (r *Runtime) prefetch() int { return max(r.cfg.Workers, 32) }

// start runs a claimed invocation whose worker slot is already taken.
func (r *Runtime) start(inv *fnhost.Invocation) {
	run := &running{inv: inv, claimed: time.Now().UTC()}
	r.mu.Lock()
	r.inflight[inv.ID] = run
	r.mu.Unlock()
	r.workers.Add(1)
	go r.work(run)
}

// work runs run in the worker slot it holds, then the invocations waiting in the ready
// queue, and gives the slot back when the queue is empty or the runtime is stopping.
func (r *Runtime) work(run *running) {
	defer r.workers.Done()
	for run != nil {
		r.execute(run)
		run = r.handOver(run.inv.Function)
	}
}

// handOver passes the worker slot held for a finished invocation of function to the next
// ready invocation, or frees it.
func (r *Runtime) handOver(function string) *running {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busyFn[function]--
	for len(r.ready) > 0 && !r.stopping.Load() {
		next := r.ready[0]
		r.ready = r.ready[1:]
		if next.lost {
			delete(r.inflight, next.inv.ID)
			continue
		}
		r.busyFn[next.inv.Function]++
		// Refill the ready queue before it runs dry.
		if r.more && len(r.ready) < r.prefetch()/2 {
			r.poke()
		}
		return next
	}
	r.busy--
	// A capped function's backlog is claimed only as its slots free up.
	if r.more || r.fns[function].Concurrency > 0 {
		r.poke()
	}
	return nil
}

// execute runs one attempt and hands its completion to the completer.
func (r *Runtime) execute(run *running) {
	if c, ok := r.attempt(run); ok {
		r.completions <- c
	}
}

// attempt runs one attempt and returns its completion; ok is false when there is
// nothing to record (the invocation was cancelled, rescued or released meanwhile).
func (r *Runtime) attempt(run *running) (c store.Completion, ok bool) {
	inv := run.inv
	if r.m != nil {
		r.m.inflight.Inc()
	}
	fn := r.fns[inv.Function]
	timeout := fn.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancelCause(r.runCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	defer cancelTimeout()
	start := time.Now().UTC()
	r.mu.Lock()
	run.cancel = cancel
	run.started = start
	r.mu.Unlock()

	logs := newCapBuffer(r.cfg.MaxLogBytes)
	deadline, _ := ctx.Deadline()
	ctx = fnhost.WithInfo(ctx, fnhost.Info{
		InvocationID: inv.ID, Function: inv.Function, Attempt: inv.Attempt,
		MaxAttempts: inv.MaxAttempts, Trigger: inv.Trigger, Deadline: deadline, Log: logs,
	})
	var ev fnhost.Event
	var res fnhost.Result
	var err error
	switch {
	case inv.Attempt > inv.MaxAttempts:
		// Lost attempts count: a job that keeps taking its host down runs out of them.
		err = fnhost.Permanent(fmt.Errorf("attempts exhausted: this would be attempt %d of %d, the earlier ones were lost with their host", inv.Attempt, inv.MaxAttempts))
	case run.ev != nil:
		res, err = r.invoke(ctx, fn, *run.ev, logs)
	default:
		if err = json.Unmarshal(inv.Event, &ev); err != nil {
			err = fnhost.Permanent(fmt.Errorf("decode event: %w", err))
		} else {
			res, err = r.invoke(ctx, fn, ev, logs)
		}
	}
	end := time.Now().UTC()
	cause := context.Cause(ctx)
	cancel(nil)

	r.mu.Lock()
	released := run.released
	r.mu.Unlock()
	if r.m != nil {
		r.m.inflight.Dec()
	}

	// Queue messages the output emits are enqueued with the success, atomically.
	var output json.RawMessage
	var spawn []store.NewInvocation
	if err == nil {
		output = res.JSONOutput()
		if spawn, err = r.emitted(inv, output); err != nil {
			err = fnhost.Permanent(err)
		}
	}
	log, truncated := logs.result()
	att := fnhost.Attempt{
		Number: inv.Attempt, StartedAt: start, FinishedAt: end, DurationMS: ms(end.Sub(start)),
		Log: log, LogTruncated: truncated, Owner: r.owner,
	}
	c = store.Completion{ID: inv.ID, Owner: r.owner}
	switch {
	case released || errors.Is(cause, errShutdown):
		r.forget(inv.ID)
		return c, false
	case errors.Is(cause, errLeaseLost):
		r.observe(inv.Function, fnhost.OutcomeCancelled, end.Sub(start))
		r.forget(inv.ID)
		return c, false
	case err == nil:
		att.Outcome = fnhost.OutcomeSucceeded
		c.State = fnhost.StateSucceeded
		c.Output = output
		c.Spawn = spawn
		if len(fn.Then) > 0 {
			c.ThenEvent = r.continuationEvent(inv, "fnhost.invocation.succeeded", c.Output)
		}
	default:
		att.Outcome = fnhost.OutcomeFailed
		att.Error = err.Error()
		if errors.Is(cause, context.DeadlineExceeded) {
			att.Outcome = fnhost.OutcomeTimeout
			att.Error = fmt.Sprintf("timed out after %s: %v", timeout, err)
		}
		c.Error = att.Error
		if !fnhost.IsPermanent(err) && inv.Attempt < inv.MaxAttempts {
			c.State = fnhost.StateScheduled
			c.RunAt = end.Add(Backoff(fn.Retry, inv.Attempt, rand.Float64()))
		} else {
			c.State = fnhost.StateFailed
			c.Spawn = r.onFailure(inv, fn, c.Error)
		}
	}
	c.Attempt = att
	r.observe(inv.Function, att.Outcome, end.Sub(start))
	return c, true
}

// invoke calls the handler, turning a panic into a failed attempt with its stack logged.
func (r *Runtime) invoke(ctx context.Context, fn *Function, ev fnhost.Event, logs *capBuffer) (res fnhost.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			fmt.Fprintf(logs, "panic: %v\n%s", p, stack)
			r.log.Error("handler panicked", "function", fn.Name, "panic", fmt.Sprint(p))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return fn.Handler.Invoke(ctx, ev)
}

func (r *Runtime) continuationEvent(inv *fnhost.Invocation, typ string, data json.RawMessage) json.RawMessage {
	ev := fnhost.NewEvent("fnhost/functions/"+inv.Function, typ, inv.ID, data)
	b, _ := json.Marshal(ev)
	return b
}

// onFailure builds the on_failure continuation of an invocation that failed for good.
func (r *Runtime) onFailure(inv *fnhost.Invocation, fn *Function, errText string) []store.NewInvocation {
	if fn.OnFailure == "" {
		return nil
	}
	data, _ := json.Marshal(map[string]any{
		"invocation_id": inv.ID, "function": inv.Function, "attempts": inv.Attempt,
		"error": errText, "event": inv.Event,
	})
	now := time.Now().UTC()
	child := store.NewInvocation{
		ID: fnhost.NewIDAt(now), Function: fn.OnFailure, Trigger: string(fnhost.ContinueOnFailure),
		Event: r.continuationEvent(inv, "fnhost.invocation.failed", data), MaxAttempts: r.fns[fn.OnFailure].Retry.MaxAttempts,
		ParentID: inv.ID, Continuation: fnhost.ContinueOnFailure, CreatedAt: now,
	}
	return r.expand(nil, child, []string{inv.Function, fn.OnFailure})
}

func (r *Runtime) observe(function string, o fnhost.Outcome, d time.Duration) {
	if r.m == nil {
		return
	}
	r.m.attempts.WithLabelValues(function, string(o)).Inc()
	r.m.duration.WithLabelValues(function).Observe(d.Seconds())
}

func (r *Runtime) forget(id string) {
	r.mu.Lock()
	delete(r.inflight, id)
	r.mu.Unlock()
}

// completer writes completions in batches, so that many attempts that end together
// share one transaction.
func (r *Runtime) completer() {
	defer r.completerWG.Done()
	const maxBatch = 512
	batch := make([]store.Completion, 0, maxBatch)
	for c := range r.completions {
		batch = append(batch[:0], c)
	drain:
		for len(batch) < maxBatch {
			select {
			case c, ok := <-r.completions:
				if !ok {
					break drain
				}
				batch = append(batch, c)
			default:
				break drain
			}
		}
		r.complete(batch)
	}
}

func (r *Runtime) complete(batch []store.Completion) {
	var dropped []string
	var err error
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		dropped, err = r.st.Complete(ctx, batch)
		cancel()
		if err == nil || try >= 5 {
			break
		}
		r.log.Error("record completions; retrying", "err", err, "count", len(batch))
		time.Sleep(time.Duration(100<<try) * time.Millisecond)
	}
	if err != nil {
		// The leases run out and the invocations are rescued: they run again.
		r.log.Error("record completions failed; the invocations will be rescued", "err", err, "count", len(batch))
	}
	now := time.Now().UTC()
	var earliest time.Time
	r.mu.Lock()
	for _, c := range batch {
		run := r.inflight[c.ID]
		delete(r.inflight, c.ID)
		if err != nil || slices.Contains(dropped, c.ID) {
			continue
		}
		if c.State == fnhost.StateScheduled && (earliest.IsZero() || c.RunAt.Before(earliest)) {
			earliest = c.RunAt
		}
		ws := r.waiters[c.ID]
		if len(ws) == 0 || !c.State.Terminal() || run == nil {
			continue
		}
		inv := finished(run.inv, c, now)
		for _, w := range ws {
			select {
			case w <- inv:
			default:
			}
		}
	}
	r.mu.Unlock()
	if !earliest.IsZero() {
		r.wakeAt(earliest)
	}
	if len(dropped) > 0 {
		r.log.Warn("completions dropped: the invocations were cancelled or rescued meanwhile", "ids", dropped)
	}
}

// heartbeat renews the leases of everything this host holds and stops handlers whose
// invocation was cancelled or taken away.
func (r *Runtime) heartbeat() {
	defer r.completerWG.Done()
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-r.hbStop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := make([]string, 0, len(r.inflight))
		for id := range r.inflight {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		lost, err := r.st.Heartbeat(r.runCtx, r.owner, ids, time.Now().UTC().Add(r.cfg.Lease))
		if err != nil {
			r.log.Error("heartbeat", "err", err)
			continue
		}
		r.mu.Lock()
		for _, id := range lost {
			if run, ok := r.inflight[id]; ok {
				run.lost = true
				if run.cancel != nil {
					run.cancel(errLeaseLost)
				}
			}
		}
		r.mu.Unlock()
	}
}

// maintenance rescues expired leases of stopped hosts and prunes old invocations and
// silent servers. Of the hosts sharing a store, only the elected leader does it.
func (r *Runtime) maintenance() {
	defer r.loops.Done()
	rescue := time.NewTicker(r.maintenanceEvery())
	defer rescue.Stop()
	lastPrune := time.Time{}
	for {
		now := time.Now().UTC()
		if r.lead(now) {
			n, err := r.st.Rescue(r.runCtx, now)
			if err != nil {
				r.log.Error("rescue", "err", err)
			} else if n > 0 {
				r.log.Warn("rescued invocations whose host stopped heartbeating", "count", n)
				r.poke()
			}
			if now.Sub(lastPrune) >= 10*time.Minute {
				lastPrune = now
				r.prune()
				if _, err := r.st.PruneServers(r.runCtx, now.Add(-10*r.cfg.Lease)); err != nil {
					r.log.Error("prune servers", "err", err)
				}
			}
		}
		select {
		case <-r.stopCh:
			return
		case <-rescue.C:
		}
	}
}

func (r *Runtime) prune() {
	if r.cfg.Retention <= 0 {
		return
	}
	n, err := r.st.Prune(r.runCtx, time.Now().UTC().Add(-r.cfg.Retention))
	if err != nil {
		r.log.Error("prune", "err", err)
	} else if n > 0 {
		r.log.Info("pruned finished invocations", "count", n, "older_than", r.cfg.Retention)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
