package ratelimit

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// floorWindows is how many windows the latency floor is the minimum of:
// the floor follows an upstream that got slower for good, after that many
// windows, instead of cutting the limit forever.
const floorWindows = 32

// aimd is the adaptive concurrency limit of one key × model on this pod:
// additive increase (one more call per window of `limit` calls that kept
// latency under tolerance × floor while the limit was used), multiplicative
// decrease on a 429 or 503, or on a window whose mean latency rose past it.
// Calls above the limit wait in acquire, before they touch the upstream.
type aimd struct {
	cfg Adaptive
	max int // the per-pod limit of the model

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []chan struct{}

	// The current window.
	n, peak   int
	sum       time.Duration
	low       time.Duration
	congested bool
	// floors are the lowest latencies of the last windows; the latency
	// floor is their minimum.
	floors [floorWindows]time.Duration
	next   int
	// changes counts limit changes (for the status and the logs).
	changes uint64
}

func newAIMD(cfg Adaptive, maxLimit int) *aimd {
	maxLimit = max(maxLimit, cfg.Min)
	return &aimd{cfg: cfg, max: maxLimit, limit: float64(min(max(cfg.Initial, cfg.Min), maxLimit))}
}

// acquire waits for a place under the limit or ctx's end.
func (a *aimd) acquire(ctx context.Context) error {
	a.mu.Lock()
	if a.inflight < int(a.limit) && len(a.waiters) == 0 {
		a.take()
		a.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	a.waiters = append(a.waiters, ch)
	a.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		for i, w := range a.waiters {
			if w == ch {
				a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
				return context.Cause(ctx)
			}
		}
		// Granted just as ctx ended: hand the place on.
		a.inflight--
		a.wake()
		return context.Cause(ctx)
	}
}

func (a *aimd) take() {
	a.inflight++
	a.peak = max(a.peak, a.inflight)
}

// wake grants places to waiters while the limit allows. Holds mu.
func (a *aimd) wake() {
	for len(a.waiters) > 0 && a.inflight < int(a.limit) {
		ch := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.take()
		ch <- struct{}{}
	}
}

// release ends a call: its latency and status drive the limit. called is
// false for a call that never went out (its place is given back only).
// It reports the limit and whether it changed.
func (a *aimd) release(called bool, latency time.Duration, status int) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	before := int(a.limit)
	if called {
		a.sample(latency, status)
	}
	a.wake()
	return int(a.limit), int(a.limit) != before
}

func (a *aimd) sample(latency time.Duration, status int) {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if !a.congested { // one decrease per window
			a.decrease()
			a.congested = true
		}
	} else if status > 0 && status < 400 {
		a.n++
		a.sum += latency
		if a.low == 0 || latency < a.low {
			a.low = latency
		}
	}
	if a.n < max(int(a.limit), 4) && !(a.congested && a.n > 0 && a.n >= int(a.limit)/2) {
		return
	}
	a.closeWindow()
}

func (a *aimd) closeWindow() {
	defer func() { a.n, a.sum, a.low, a.peak, a.congested = 0, 0, 0, a.inflight, false }()
	if a.n == 0 {
		return
	}
	a.floors[a.next%floorWindows] = a.low
	a.next++
	floor := a.low
	for _, f := range a.floors[:min(a.next, floorWindows)] {
		if f > 0 && f < floor {
			floor = f
		}
	}
	mean := a.sum / time.Duration(a.n)
	switch {
	case a.congested:
	case float64(mean) > float64(floor)*a.cfg.LatencyTolerance:
		a.decrease()
	case a.peak >= int(a.limit)-1 && int(a.limit) < a.max:
		a.limit++
		a.changes++
	}
}

func (a *aimd) decrease() {
	l := max(a.limit*a.cfg.Backoff, float64(a.cfg.Min))
	if int(l) == int(a.limit) && l > float64(a.cfg.Min) {
		l-- // small limits still move
	}
	if int(l) != int(a.limit) {
		a.changes++
	}
	a.limit = max(l, float64(a.cfg.Min))
}

// setMax follows a change of the per-pod limit.
func (a *aimd) setMax(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.max = max(n, a.cfg.Min)
	a.limit = min(a.limit, float64(a.max))
	a.wake()
}

// status is the current limit and calls in flight.
func (a *aimd) status() (limit, inflight, waiting int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.limit), a.inflight, len(a.waiters)
}
