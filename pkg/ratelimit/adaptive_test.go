package ratelimit_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/ratelimit"
)

func TestAdaptiveLimitGrowsWhileFastAndShrinksOnSlownessAnd429s(t *testing.T) {
	t.Parallel()
	l, _, _, _ := setup(t, ratelimit.Config{Adaptive: ratelimit.Adaptive{Enabled: true, Initial: 4, LatencyTolerance: 1.5, Backoff: 0.5}})
	key := ratelimit.Key{Budget: "route:vllm", Model: "m"}
	limit := func() int {
		st := l.Status()
		require.Len(t, st, 1)
		return st[0].AdaptiveLimit
	}
	// round runs a full window: as many calls as the limit, all at once,
	// each answering status after latency.
	round := func(latency time.Duration, status int) {
		var tickets []ratelimit.Ticket
		for i := 0; i == 0 || i < limit(); i++ {
			tk, err := l.Acquire(context.Background(), key, nil, time.Time{})
			require.NoError(t, err)
			tickets = append(tickets, tk)
		}
		for _, tk := range tickets {
			tk.Done(context.Background(), ratelimit.Outcome{Called: true, Status: status, Latency: latency})
		}
	}
	round(10*time.Millisecond, http.StatusOK)
	require.Equal(t, 5, limit(), "a full window at the latency floor adds one")
	for range 5 {
		round(10*time.Millisecond, http.StatusOK)
	}
	require.Equal(t, 10, limit())
	round(20*time.Millisecond, http.StatusOK)
	require.Equal(t, 5, limit(), "a window twice as slow as the floor halves it")
	round(10*time.Millisecond, http.StatusTooManyRequests)
	require.Equal(t, 2, limit(), "a 429 halves it")
	for range 4 { // windows are at least 4 calls long
		round(10*time.Millisecond, http.StatusOK)
	}
	require.Equal(t, 4, limit())
	for range 100 {
		round(10*time.Millisecond, http.StatusOK)
	}
	require.Equal(t, 64, limit(), "never above the per-pod limit")
}

func TestAdaptiveWaitersGiveUpWithTheirContext(t *testing.T) {
	t.Parallel()
	l, _, _, _ := setup(t, ratelimit.Config{Adaptive: ratelimit.Adaptive{Enabled: true, Initial: 1}})
	key := ratelimit.Key{Budget: "route:vllm", Model: "m"}
	tk, err := l.Acquire(context.Background(), key, nil, time.Time{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Acquire(ctx, key, nil, time.Time{})
	require.ErrorIs(t, err, context.Canceled)
	tk.Done(context.Background(), ratelimit.Outcome{Called: true, Status: 200, Latency: time.Millisecond})
	tk, err = l.Acquire(context.Background(), key, nil, time.Time{})
	require.NoError(t, err, "the place is free again")
	tk.Done(context.Background(), ratelimit.Outcome{})
}
