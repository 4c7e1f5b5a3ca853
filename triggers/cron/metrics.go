package cron

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// slotsTotal counts slots by what became of them:
//   - fired: submitted on time;
//   - duplicate: submitted, and found already submitted (by another instance, or
//     before a restart);
//   - skipped_overlap: not submitted because the previous invocation had not finished;
//   - missed_dropped: missed and not run by the missed policy (one keeps the most
//     recent, all keeps up to 1000, skip none);
//   - caught_up: a missed slot submitted late, past_due.
var slotsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "fnhost_cron_slots_total",
	Help: "Cron slots by function and outcome: fired, duplicate, skipped_overlap, missed_dropped, caught_up.",
}, []string{"function", "outcome"})

var outcomes = []string{"fired", "duplicate", "skipped_overlap", "missed_dropped", "caught_up"}

// registerMetrics registers the package's counter with r, once per registry.
func registerMetrics(r prometheus.Registerer, log *slog.Logger) {
	if r == nil {
		return
	}
	if err := r.Register(slotsTotal); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			log.Warn("cron trigger: cannot register its metrics", "err", err)
		}
	}
}

// initMetrics makes every outcome of function visible at zero.
func initMetrics(function string) {
	for _, o := range outcomes {
		slotsTotal.WithLabelValues(function, o)
	}
}

func count(function, outcome string, n int64) {
	if n > 0 {
		slotsTotal.WithLabelValues(function, outcome).Add(float64(n))
	}
}
