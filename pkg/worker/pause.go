package worker

import (
	"context"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// pause waits before the n-th retry of a Redis call: 100 ms doubling to
// 5 s, ±25 %. It reports false when ctx ended first.
func (w *Worker) pause(ctx context.Context, n int) bool {
	d := min(100*time.Millisecond<<min(n, 6), 5*time.Second)
	d = lifecycle.ApplyJitter(d, 0.25, w.jitter)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
