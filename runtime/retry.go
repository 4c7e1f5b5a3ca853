package runtime

import (
	"math"
	"time"

	"github.com/fnhost/fnhost/manifest"
)

// Backoff returns the delay before the attempt that follows attempt number n (1-based)
// under policy p. r is a random number in [0, 1) that spreads the delay by the policy's
// jitter: the result lies within ±jitter of the nominal delay and never above
// MaxInterval.
func Backoff(p manifest.Retry, n int, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(p.InitialInterval)
	if p.Backoff != "fixed" {
		d *= math.Pow(2, float64(n-1))
	}
	if p.MaxInterval > 0 && d > float64(p.MaxInterval) {
		d = float64(p.MaxInterval)
	}
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*r-1)
	}
	if p.MaxInterval > 0 && d > float64(p.MaxInterval) {
		d = float64(p.MaxInterval)
	}
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}
