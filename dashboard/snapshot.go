package dashboard

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// snapshotCache keeps a value that is costly to read for ttl, loading it once for every
// reader that asks meanwhile: the overview every open page refreshes, the day's totals.
type snapshotCache[T any] struct {
	ttl  time.Duration
	load func(ctx context.Context) (T, error)

	mu      sync.Mutex
	val     T
	at      time.Time
	loading chan struct{} // closed when the load in flight ends
	err     error
}

func newSnapshotCache[T any](ttl time.Duration, load func(ctx context.Context) (T, error)) *snapshotCache[T] {
	return &snapshotCache[T]{ttl: ttl, load: load}
}

// get returns the value, loading it when it is older than ttl. Concurrent callers wait
// for one load.
func (c *snapshotCache[T]) get(ctx context.Context) (T, error) {
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	if wait := c.loading; wait != nil {
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.val, c.err
	}
	done := make(chan struct{})
	c.loading = done
	c.mu.Unlock()

	// The load outlives a caller that goes away: the others may be waiting for it.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	v, err := c.load(lctx)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.loading = nil
	c.err = err
	if err == nil {
		c.val, c.at = v, time.Now()
	}
	close(done)
	return v, err
}

// invalidate makes the next get load again: an action changed what it shows.
func (c *snapshotCache[T]) invalidate() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// stateCount is one state's count on the overview.
type stateCount struct {
	State fnhost.State
	Count int64
}

// totals are attempt counts over a period.
type totals struct {
	Succeeded, Failed, Dead int64
}

func (t *totals) add(b store.Bucket) {
	t.Succeeded += b.Succeeded
	t.Failed += b.Failed
	t.Dead += b.Dead
}

// Rate is the share of attempts that succeeded, as a percentage with one decimal, or
// "–" without attempts.
func (t totals) Rate() string {
	n := t.Succeeded + t.Failed
	if n == 0 {
		return "–"
	}
	return strconv.FormatFloat(math.Floor(float64(t.Succeeded)*1000/float64(n))/10, 'f', -1, 64) + "%"
}

// overview is what the overview shows, read at At.
type overview struct {
	At     time.Time
	States []stateCount
	// Ready is the backlog; OldestReady the run_at of the invocation waiting longest.
	Ready       int64
	OldestReady time.Time
	// Hour and Minute total the last 60 minutes and the current minute.
	Hour, Minute totals
	Graph        graph
	// InFlight and Workers sum the live instances; Instances counts them.
	InFlight, Workers, Instances int
	Failures                     []*fnhost.Invocation
}

// liveStates are the states the overview counts, in the order it shows them.
var liveStates = []fnhost.State{fnhost.StateScheduled, fnhost.StatePending, fnhost.StateRunning,
	fnhost.StateAwaiting, fnhost.StateFailed, fnhost.StateCancelled}

func (d *Dashboard) loadOverview(ctx context.Context) (*overview, error) {
	now := d.cfg.Now().UTC()
	o := &overview{At: now}
	counts, err := d.counts.get(ctx)
	if err != nil {
		return nil, err
	}
	total := store.TotalCounts(counts)
	o.Ready, o.OldestReady = total.Ready, total.OldestReady
	for _, s := range liveStates {
		o.States = append(o.States, stateCount{s, total.Of(s)})
	}
	start := now.Truncate(time.Minute).Add(-59 * time.Minute)
	buckets, err := d.cfg.Store.Throughput(ctx, start)
	if err != nil {
		return nil, err
	}
	perMinute := make([]totals, 60)
	for _, b := range buckets {
		i := int(b.Minute.Sub(start) / time.Minute)
		if i < 0 || i >= 60 {
			continue
		}
		perMinute[i].add(b)
		o.Hour.add(b)
	}
	o.Minute = perMinute[59]
	o.Graph = newGraph(start, perMinute)
	servers, err := d.cfg.Backend.Servers(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range servers.Items {
		if s.Alive {
			o.Instances++
			o.InFlight += s.InFlight
			o.Workers += s.Workers
		}
	}
	page, err := d.cfg.Store.List(ctx, store.Filter{State: fnhost.StateFailed, Limit: 5})
	if err != nil {
		return nil, err
	}
	o.Failures = page.Items
	return o, nil
}

// dailyTotals are the attempts of the last 24 hours, per function and in all.
type dailyTotals struct {
	All        totals
	ByFunction map[string]totals
}

func (d *Dashboard) loadDaily(ctx context.Context) (dailyTotals, error) {
	buckets, err := d.cfg.Store.Throughput(ctx, d.cfg.Now().Add(-24*time.Hour))
	if err != nil {
		return dailyTotals{}, err
	}
	t := dailyTotals{ByFunction: map[string]totals{}}
	for _, b := range buckets {
		t.All.add(b)
		f := t.ByFunction[b.Function]
		f.add(b)
		t.ByFunction[b.Function] = f
	}
	return t, nil
}

// graph is the throughput graph of the last hour, drawn as SVG paths on a plot of
// graphW by graphH.
type graph struct {
	// Succeeded and Failed are the paths of the two series, Area the filled area
	// under Succeeded.
	Succeeded, Failed, Area string
	// Max is the top of the vertical scale; YTicks and XTicks label the axes.
	Max    int64
	YTicks []tick
	XTicks []tick
	Points []graphPoint
}

type tick struct {
	Pos   float64
	Label string
}

// graphPoint is one minute, for the table beside the graph.
type graphPoint struct {
	Minute time.Time
	totals
}

const (
	graphW = 720.0
	graphH = 160.0
)

func newGraph(start time.Time, perMinute []totals) graph {
	g := graph{}
	var top int64
	for i, t := range perMinute {
		top = max(top, t.Succeeded, t.Failed)
		g.Points = append(g.Points, graphPoint{start.Add(time.Duration(i) * time.Minute), t})
	}
	g.Max = niceCeil(top)
	x := func(i int) float64 { return float64(i) * graphW / float64(len(perMinute)-1) }
	y := func(v int64) float64 { return graphH - float64(v)*graphH/float64(g.Max) }
	var ok, bad, area strings.Builder
	for i, t := range perMinute {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&ok, "%s%.1f %.1f ", cmd, x(i), y(t.Succeeded))
		fmt.Fprintf(&bad, "%s%.1f %.1f ", cmd, x(i), y(t.Failed))
	}
	area.WriteString(ok.String())
	fmt.Fprintf(&area, "L%.1f %.1f L0 %.1f Z", graphW, graphH, graphH)
	g.Succeeded, g.Failed, g.Area = strings.TrimSpace(ok.String()), strings.TrimSpace(bad.String()), area.String()
	for _, f := range []int64{0, 2, 4} {
		v := g.Max * f / 4
		g.YTicks = append(g.YTicks, tick{y(v), compact(v)})
	}
	for i := 0; i < len(perMinute); i += 15 {
		g.XTicks = append(g.XTicks, tick{x(i), start.Add(time.Duration(i) * time.Minute).Format("15:04")})
	}
	g.XTicks = append(g.XTicks, tick{graphW, "now"})
	return g
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 4, so that the
// quarter ticks are whole).
func niceCeil(v int64) int64 {
	if v <= 4 {
		return 4
	}
	p := int64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []int64{1, 2, 4, 5, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// compact writes n with k or M for thousands and millions.
func compact(n int64) string {
	switch {
	case n >= 10_000_000:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 1_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 10_000:
		return strconv.FormatInt(n/1000, 10) + "k"
	case n >= 1000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}
