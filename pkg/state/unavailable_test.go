package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

func TestErrUnavailableWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A client that does not retry, so the test does not wait out go-redis's
	// default dial retries.
	client := redis.NewClient(&redis.Options{Addr: b.redis.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = client.Close() })
	st, err := state.New(client, b.cfg)
	require.NoError(t, err)
	b.store = st
	b.createBatch(t, "b1", 2)
	p := b.claim(t, request("r1", "b1"), "w")
	b.redis.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = b.store.Claim(ctx, state.ClaimArgs{Request: request("r2", "b1"), Owner: "w", Start: true})
	require.ErrorIs(t, err, state.ErrUnavailable)
	_, err = b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.ErrorIs(t, err, state.ErrUnavailable)
	_, err = b.store.Batch(ctx, "b1")
	require.ErrorIs(t, err, state.ErrUnavailable)
	_, err = b.store.Request(ctx, p.Ref)
	require.ErrorIs(t, err, state.ErrUnavailable)
	require.ErrorIs(t, b.store.Refresh(ctx, []lifecycle.Held{p.Held()})[0], state.ErrUnavailable)
	require.ErrorIs(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{p.Ref})), state.ErrUnavailable)
	_, err = b.store.AcquireModelSlot(ctx, "m", "h", 1, time.Second)
	require.ErrorIs(t, err, state.ErrUnavailable)
}

func TestCanceledContextIsNotUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.store.Batch(ctx, "b1")
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, state.ErrUnavailable))
}

// After a restart Redis has forgotten the scripts and the data: single calls
// and pipelined calls reload the scripts transparently.
func TestScriptsReloadAfterRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	p := b.claim(t, request("r1", "b1"), "w")
	require.NoError(t, b.store.Refresh(ctx, []lifecycle.Held{p.Held()})[0])

	b.redis.Restart()
	require.ErrorIs(t, b.store.Refresh(ctx, []lifecycle.Held{p.Held()})[0], state.ErrLeaseLost, "the record is gone")
	_, err := b.store.Batch(ctx, "b1")
	require.ErrorIs(t, err, state.ErrNotFound)

	b.createBatch(t, "b1", 1)
	p = b.claim(t, request("r1", "b1"), "w")
	require.NoError(t, b.redis.Client.ScriptFlush(ctx).Err())
	require.NoError(t, b.store.Refresh(ctx, []lifecycle.Held{p.Held()})[0], "pipelined EVALSHA reloads after NOSCRIPT")
	require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{p.Ref})))
}

func TestModelSlots(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	acquire := func(holder string) bool {
		ok, err := b.store.AcquireModelSlot(ctx, "m/x", holder, 2, 10*time.Second)
		require.NoError(t, err)
		return ok
	}
	require.True(t, acquire("a"))
	require.True(t, acquire("b"))
	require.False(t, acquire("c"), "limit 2")
	require.True(t, acquire("a"), "a holder keeps its slot")

	require.NoError(t, b.store.ReleaseModelSlot(ctx, "m/x", "a"))
	require.True(t, acquire("c"))

	b.clock.Advance(8 * time.Second)
	require.NoError(t, b.store.RefreshModelSlots(ctx, "m/x", []string{"b"}, 10*time.Second))
	b.clock.Advance(3 * time.Second) // c expired, b refreshed
	require.True(t, acquire("d"))
	require.False(t, acquire("e"))

	_, err := b.store.AcquireModelSlot(ctx, "m/x", "f", 0, time.Second)
	require.Error(t, err)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]state.Config{
		"prefix":        {Prefix: "a{b"},
		"ttl":           {LeaseTTL: -time.Second},
		"retention":     {Retention: -time.Second},
		"max_reclaims":  {MaxReclaims: -1},
		"wait_replicas": {WaitReplicas: -1},
		"wait_timeout":  {WaitReplicas: 1, WaitTimeout: -time.Second},
	} {
		err := c.WithDefaults().Validate()
		require.ErrorIs(t, err, state.ErrInvalidConfig, name)
		require.Contains(t, err.Error(), name)
	}
	require.NoError(t, state.Config{}.WithDefaults().Validate())
}

func TestModelSlotsUseOnlyThePassedClock(t *testing.T) {
	t.Parallel()
	// The pod's clock is far behind the Redis server's: an absolute expiry
	// (PEXPIREAT) taken from it would delete the key at once.
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	b := setup(t, func(c *state.Config) { c.Clock = func() time.Time { return past } })
	ctx := ctxT(t)
	key := b.redis.Prefix + ":{slots:m}:holders"

	ok, err := b.store.AcquireModelSlot(ctx, "m", "a", 1, 10*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	ttl, err := b.redis.Client.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.Positive(t, ttl, "the slot key survives a clock skew")
	require.LessOrEqual(t, ttl, 10*time.Second)
	ok, err = b.store.AcquireModelSlot(ctx, "m", "b", 1, 10*time.Second)
	require.NoError(t, err)
	require.False(t, ok, "the one slot is still held")

	require.NoError(t, b.store.RefreshModelSlots(ctx, "m", []string{"a"}, 20*time.Second))
	ttl, err = b.redis.Client.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 10*time.Second, "refresh extends the key relative to the passed clock")
	require.LessOrEqual(t, ttl, 20*time.Second)

	_, err = b.store.AcquireModelSlot(ctx, "m", "a", 1, 0)
	require.ErrorIs(t, err, state.ErrInvalidSlotArgs)
	require.Contains(t, err.Error(), "ttl")
	err = b.store.RefreshModelSlots(ctx, "m", []string{"a"}, -time.Second)
	require.ErrorIs(t, err, state.ErrInvalidSlotArgs)
	require.Contains(t, err.Error(), "ttl")
	_, err = b.store.AcquireModelSlot(ctx, "m", "a", 0, time.Second)
	require.ErrorIs(t, err, state.ErrInvalidSlotArgs)
	require.Contains(t, err.Error(), "limit")
}
