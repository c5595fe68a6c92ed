package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/pkg/ratelimit"
	"github.com/salvo-run/salvo/pkg/state"
)

// clock is a fixed instant a test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// setup builds a limiter over a real Redis store.
func setup(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, *testredis.Server, *clock, *redis.Client) {
	t.Helper()
	srv := testredis.New(t)
	clk := &clock{t: now}
	// No retries, so that a stopped server fails each call at once.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = client.Close() })
	st, err := state.New(client, state.Config{Prefix: srv.Prefix, Clock: clk.Now})
	require.NoError(t, err)
	l, err := ratelimit.New(cfg, st, clk.Now, func(string) int { return 64 }, zerolog.Nop())
	require.NoError(t, err)
	return l, srv, clk, client
}

// admitted counts the calls of n that get budget at once: with the clock
// standing still and a cutoff 1ms away, a call that would have to wait
// fails with ErrDeadline instead.
func admitted(t *testing.T, l *ratelimit.Limiter, clk *clock, key ratelimit.Key, n int) int {
	t.Helper()
	ok := 0
	for range n {
		tk, err := l.Acquire(context.Background(), key, nil, clk.Now().Add(time.Millisecond))
		if errors.Is(err, ratelimit.ErrDeadline) {
			continue
		}
		require.NoError(t, err)
		ok++
		tk.Done(context.Background(), ratelimit.Outcome{Called: true, Status: 200})
	}
	return ok
}

func TestAKeyWithoutLimitsCostsNoRedisCall(t *testing.T) {
	t.Parallel()
	l, srv, clk, _ := setup(t, ratelimit.Config{})
	srv.Stop() // any Redis call would fail and start the fallback
	key := ratelimit.Key{Budget: "key:abc", Model: "m"}
	require.Equal(t, 100, admitted(t, l, clk, key, 100))
	require.Empty(t, l.Status(), "nothing was set up for the key")
}

func TestRedisDownFallsBackToALocalShareNeverToUnlimited(t *testing.T) {
	t.Parallel()
	cfg := ratelimit.Config{Budgets: map[string]ratelimit.Budget{"m": {RequestsPerMinute: 100}}, FallbackShare: 0.25}
	l, srv, clk, client := setup(t, cfg)
	key := ratelimit.Key{Budget: "key:abc", Model: "m"}
	require.Equal(t, 10, admitted(t, l, clk, key, 10), "Redis up: the shared budget")

	srv.Stop()
	require.Equal(t, 25, admitted(t, l, clk, key, 100), "Redis down: a quarter of the 100 a minute, no more")
	st := l.Status()
	require.Len(t, st, 1)
	require.True(t, st[0].Fallback)

	// A budget learned from headers only is shared the same way.
	learned := ratelimit.Key{Budget: "key:abc", Model: "learned"}
	tk, err := l.Acquire(context.Background(), learned, nil, time.Time{})
	require.NoError(t, err)
	obs := ratelimit.ParseHeaders(header("x-ratelimit-limit-requests", "40", "x-ratelimit-remaining-requests", "39"), 200, now)
	tk.Done(context.Background(), ratelimit.Outcome{Called: true, Status: 200, Observation: obs})
	require.Equal(t, 10, admitted(t, l, clk, learned, 50), "a quarter of the learned 40")

	srv.Restart()
	require.Eventually(t, func() bool { return client.Ping(context.Background()).Err() == nil }, 10*time.Second, 10*time.Millisecond,
		"the client's pool reconnects")
	require.Equal(t, 100, admitted(t, l, clk, key, 150), "Redis back (empty after its restart): the shared bucket again")
	require.False(t, l.Status()[1].Fallback)
}

// workers are n limiters with cfg over one Redis, as n worker processes
// would have, sharing a clock the test moves.
func workers(t *testing.T, n int, cfg ratelimit.Config) ([]*ratelimit.Limiter, *clock) {
	t.Helper()
	srv := testredis.New(t)
	clk := &clock{t: now}
	var ls []*ratelimit.Limiter
	for range n {
		st, err := state.New(srv.Client, state.Config{Prefix: srv.Prefix, Clock: clk.Now})
		require.NoError(t, err)
		l, err := ratelimit.New(cfg, st, clk.Now, func(string) int { return 8 }, zerolog.Nop())
		require.NoError(t, err)
		ls = append(ls, l)
	}
	return ls, clk
}

func TestAHoldSeenByOneWorkerHoldsTheOthers(t *testing.T) {
	t.Parallel()
	ls, _ := workers(t, 2, ratelimit.Config{Budgets: map[string]ratelimit.Budget{"m": {RequestsPerMinute: 6000}}})
	key := ratelimit.Key{Budget: "name:shared", Model: "m"}
	tk, err := ls[0].Acquire(context.Background(), key, nil, time.Time{})
	require.NoError(t, err)
	obs := ratelimit.ParseHeaders(header("retry-after", "2"), http.StatusTooManyRequests, now)
	tk.Done(context.Background(), ratelimit.Outcome{Called: true, Status: http.StatusTooManyRequests, Observation: obs})

	_, err = ls[1].Acquire(context.Background(), key, nil, now.Add(time.Second))
	require.ErrorIs(t, err, ratelimit.ErrDeadline, "held for 2s: nothing before a 1s cutoff")
	_, err = ls[1].Acquire(context.Background(), ratelimit.Key{Budget: "name:shared", Model: "other"}, nil, now.Add(time.Second))
	require.NoError(t, err, "another model of the key is not held")
}

func TestBucketNeverAdmitsMoreThanItHolds(t *testing.T) {
	t.Parallel()
	b := &ratelimit.Bucket{Limits: ratelimit.Amounts{ratelimit.Tokens: 1000}}
	var got int64
	for i := range 200 {
		cost := ratelimit.Cost{Input: int64(1 + i%37)}.Amounts()
		if ok, wait := b.Admit(now, cost, 0); ok {
			require.Zero(t, wait)
			got += cost[ratelimit.Tokens]
		}
	}
	require.LessOrEqual(t, got, int64(1000))
	require.Greater(t, got, int64(1000-37))

	ok, wait := b.Admit(now, ratelimit.Cost{Input: 100}.Amounts(), time.Minute)
	require.True(t, ok, "a reservation within the longest wait")
	require.Positive(t, wait)
	b.Hold(now.Add(time.Second))
	ok, wait = b.Admit(now, ratelimit.Amounts{}, time.Minute)
	require.False(t, ok)
	require.Equal(t, time.Second, wait)
}

func TestAHoldEventMakesAWorkerWithoutBudgetsAskTheStore(t *testing.T) {
	t.Parallel()
	ls, clk := workers(t, 2, ratelimit.Config{})
	// No budget configured and no header seen: the upstream's 429 with
	// Retry-After is the first thing either worker learns of the key.
	key := ratelimit.Key{Budget: "key:abc", Model: "m"}
	tk, err := ls[0].Acquire(context.Background(), key, nil, time.Time{})
	require.NoError(t, err)
	obs := ratelimit.ParseHeaders(header("retry-after", "2"), http.StatusTooManyRequests, now)
	tk.Done(context.Background(), ratelimit.Outcome{Called: true, Status: http.StatusTooManyRequests, Observation: obs})
	require.Equal(t, key, tk.Key())

	_, err = ls[1].Acquire(context.Background(), key, nil, now.Add(time.Second))
	require.NoError(t, err, "without the event the other worker does not ask the store")

	ls[1].Held(key) // the hold event
	_, err = ls[1].Acquire(context.Background(), key, nil, now.Add(time.Second))
	require.ErrorIs(t, err, ratelimit.ErrDeadline, "held for 2s in the store: nothing before a 1s cutoff")
	clk.mu.Lock()
	clk.t = now.Add(2 * time.Second)
	clk.mu.Unlock()
	_, err = ls[1].Acquire(context.Background(), key, nil, clk.Now().Add(time.Millisecond))
	require.NoError(t, err, "the hold is over")
}
