package worker

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Waits between retries of the worker's own Redis and NATS calls.
const (
	// redisPause is the first wait while Redis is unreachable; it doubles
	// up to retryPauseMax, ±retryJitter.
	redisPause    = 100 * time.Millisecond
	retryPauseMax = 5 * time.Second
	retryJitter   = 0.25
	// pollJitter spreads a fixed poll over [½, 1½) of its interval, so the
	// pods of a fleet do not poll in step.
	pollJitter = 0.5
)

// retryBackOff paces the retries of a call that failed for want of Redis
// or NATS: first, doubling to 5 s, ±25 %, until ctx ends. It never stops
// by itself; the callers bound their retries.
func retryBackOff(ctx context.Context, first time.Duration) backoff.BackOffContext {
	return backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(first),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(retryPauseMax),
		backoff.WithRandomizationFactor(retryJitter),
		backoff.WithMaxElapsedTime(0),
	), ctx)
}

// pollBackOff paces a fixed poll (not a retry: nothing failed) every
// interval, ±50 %, until ctx ends.
func pollBackOff(ctx context.Context, every time.Duration) backoff.BackOffContext {
	return backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(every),
		backoff.WithMultiplier(1),
		backoff.WithMaxInterval(every),
		backoff.WithRandomizationFactor(pollJitter),
		backoff.WithMaxElapsedTime(0),
	), ctx)
}

// pause waits for b's next interval. It reports false when b stopped or
// its context ended first.
func pause(b backoff.BackOffContext) bool {
	d := b.NextBackOff()
	if d == backoff.Stop {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-b.Context().Done():
		return false
	case <-timer.C:
		return true
	}
}
