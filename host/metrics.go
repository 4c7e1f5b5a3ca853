package host

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost"
	"github.com/fnhost/fnhost/store"
)

// storeCollector exports the store's counts by state and the queue depth. Scrapes
// closer than a second apart share one read.
type storeCollector struct {
	st      store.Store
	byState *prometheus.Desc
	depth   *prometheus.Desc

	mu    sync.Mutex
	last  time.Time
	stats store.Stats
}

func newStoreCollector(st store.Store) *storeCollector {
	return &storeCollector{
		st:      st,
		byState: prometheus.NewDesc("fnhost_invocations", "Invocations in the store, by state.", []string{"state"}, nil),
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
		s, err := c.st.Stats(ctx, time.Now().UTC())
		cancel()
		if err == nil {
			c.stats, c.last = s, time.Now()
		}
	}
	s := c.stats
	c.mu.Unlock()
	for _, st := range fnhost.States {
		ch <- prometheus.MustNewConstMetric(c.byState, prometheus.GaugeValue, float64(s.ByState[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Ready))
}
