package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Back-off bounds of a failing pull loop.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

// errLoopDone, returned by a pull, ends its loop without an error (an idle
// fetch loop stopping itself).
var errLoopDone = errors.New("queue: pull loop done")

// pullLoop is the skeleton of the consumer's pull loops, a model's fetch
// loop and the advisory loop. Each turn makes sure the loop's durable
// consumer exists, then pulls once and handles what arrives. An error of
// either step forgets the consumer (a deleted consumer and a restarted
// server look alike: the next turn creates or updates it) and backs off
// exponentially from retryMin to retryMax; a successful turn marks the loop
// healthy and starts the back-off over.
type pullLoop struct {
	health *loopHealth
	log    zerolog.Logger
	// ensure creates or updates the durable consumer.
	ensure func(ctx context.Context) (jetstream.Consumer, error)
	// pull pulls once from cons and handles the messages; errLoopDone
	// ends the loop.
	pull func(ctx context.Context, cons jetstream.Consumer) error
}

// run turns until ctx ends or a pull returns errLoopDone.
func (l *pullLoop) run(ctx context.Context) {
	var cons jetstream.Consumer
	turn := func() error {
		if cons == nil {
			c, err := l.ensure(ctx)
			if err != nil {
				return err
			}
			cons = c
		}
		if err := l.pull(ctx, cons); err != nil {
			if errors.Is(err, errLoopDone) {
				return backoff.Permanent(err)
			}
			cons = nil
			return err
		}
		l.health.ok()
		return nil
	}
	notify := func(err error, wait time.Duration) {
		l.health.failed(err)
		l.log.Warn().Err(err).Dur("retry_in", wait).Msg("pull loop error; recreating the consumer")
	}
	b := backoff.WithContext(newBackOff(retryMin, retryMax), ctx)
	for ctx.Err() == nil {
		// Each call starts b over, so a success resets the back-off; it
		// returns at the first success, at errLoopDone or when ctx ends.
		if err := backoff.RetryNotify(turn, b, notify); errors.Is(err, errLoopDone) {
			return
		}
	}
}

// pullOnce runs one pull request for up to n messages on cons, bounded by
// Config.FetchExpiry, and hands each message to handle as it arrives. It
// returns how many arrived. The pull's own deadline is an empty, successful
// poll, and so is anything once ctx has ended (stopping).
func (c *Client) pullOnce(ctx context.Context, cons jetstream.Consumer, n int, handle func(jetstream.Msg)) (int, error) {
	fctx, cancel := context.WithTimeout(ctx, c.cfg.FetchExpiry)
	defer cancel()
	// Idle heartbeats detect a dead server or a deleted consumer within
	// 2×heartbeat instead of waiting for the pull to expire.
	batch, err := cons.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(c.cfg.FetchExpiry/4))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		handle(msg)
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		err = nil
	}
	return got, err
}

// newBackOff doubles from initial up to maxWait with ±25 % jitter and never
// gives up by itself: callers bound it with backoff.WithContext.
func newBackOff(initial, maxWait time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(maxWait),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.25),
		backoff.WithMaxElapsedTime(0),
	)
}

// loopHealth records when a loop last fetched or polled successfully.
type loopHealth struct {
	okAt    atomic.Int64
	lastErr atomic.Pointer[string]
}

func newLoopHealth() *loopHealth {
	h := &loopHealth{}
	h.ok()
	return h
}

func (h *loopHealth) ok() { h.okAt.Store(time.Now().UnixNano()) }

func (h *loopHealth) failed(err error) {
	s := err.Error()
	h.lastErr.Store(&s)
}

func (h *loopHealth) problem(now time.Time, stale time.Duration) string {
	age := now.Sub(time.Unix(0, h.okAt.Load()))
	if age <= stale {
		return ""
	}
	msg := fmt.Sprintf("no successful fetch for %s", age.Round(time.Millisecond))
	if e := h.lastErr.Load(); e != nil {
		msg += " (last error: " + *e + ")"
	}
	return msg
}
