package host

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// storeCollector exports the store's counts by state and the queue depth, from
// Store.Counts: the indexes of every state but succeeded, so that a scrape costs what
// the live work and the failed set cost, not the history. Succeeded invocations are
// counted by fnhost_attempts_total{outcome="succeeded"}. Scrapes closer than a second
// apart share one read.
type storeCollector struct {
	st      store.Store
	byState *prometheus.Desc
	depth   *prometheus.Desc

	mu     sync.Mutex
	last   time.Time
	counts map[string]store.FunctionCounts
}

func newStoreCollector(st store.Store) *storeCollector {
	return &storeCollector{
		st:      st,
		byState: prometheus.NewDesc("fnhost_invocations", "Invocations in the store, by state (every state but succeeded).", []string{"state"}, nil),
		depth:   prometheus.NewDesc("fnhost_queue_depth", "Invocations ready to run now (pending, or scheduled and due).", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byState
	ch <- c.depth
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if time.Since(c.last) > time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := c.st.Counts(ctx, time.Now().UTC())
		cancel()
		if err == nil {
			c.counts, c.last = counts, time.Now()
		}
	}
	sum := store.TotalCounts(c.counts)
	c.mu.Unlock()
	for _, state := range fnhost.States {
		if state != fnhost.StateSucceeded {
			ch <- prometheus.MustNewConstMetric(c.byState, prometheus.GaugeValue, float64(sum.Of(state)), string(state))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(sum.Ready))
}
