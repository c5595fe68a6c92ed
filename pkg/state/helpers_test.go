package state_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// base is the fake clock's start: a fixed instant so tests never depend on
// the wall clock.
var base = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a movable clock shared by a test and its store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// bundle is what setup gives a test.
type bundle struct {
	redis *testredis.Server
	clock *fakeClock
	store *state.Store
	cfg   state.Config
}

// setup starts a redis-server for the test and a store over it with a
// movable clock. mod may adjust the config.
func setup(t testing.TB, mod ...func(*state.Config)) *bundle {
	t.Helper()
	srv := testredis.New(t)
	clk := &fakeClock{t: base}
	cfg := state.Config{Prefix: srv.Prefix, Clock: clk.Now, LeaseTTL: 30 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	st, err := state.New(srv.Client, cfg)
	require.NoError(t, err)
	return &bundle{redis: srv, clock: clk, store: st, cfg: st.Config()}
}

var forks atomic.Int64

// fork returns a bundle with a store of its own (key prefix and clock) on
// b's redis-server, for parallel subtests that share one server.
func (b *bundle) fork(t testing.TB) *bundle {
	t.Helper()
	clk := &fakeClock{t: base}
	cfg := b.cfg
	cfg.Prefix = fmt.Sprintf("%s-f%d", b.cfg.Prefix, forks.Add(1))
	cfg.Clock = clk.Now
	st, err := state.New(b.redis.Client, cfg)
	require.NoError(t, err)
	return &bundle{redis: b.redis, clock: clk, store: st, cfg: st.Config()}
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createBatch records a batch of total requests expiring in 24h.
func (b *bundle) createBatch(t testing.TB, id string, total int64) lifecycle.Batch {
	t.Helper()
	bt, _, err := b.store.CreateBatch(ctxT(t), state.NewBatch{
		ID: id, CompletionWindow: "24h", Endpoint: "/v1/chat/completions",
		CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour), Total: total,
	})
	require.NoError(t, err)
	return bt
}

// request builds a queued request of batch (or batchless with "").
func request(id, batch string) *lifecycle.Request {
	return &lifecycle.Request{
		V: lifecycle.WireVersion, ID: id, BatchID: batch, CustomID: "c-" + id, Model: "gpt-4o",
		Method: "POST", URL: "/v1/chat/completions", ExpiresAt: base.Add(24 * time.Hour),
	}
}

// claim claims req for owner straight into processing and requires a Held.
func (b *bundle) claim(t testing.TB, req *lifecycle.Request, owner string) lifecycle.Processing {
	t.Helper()
	c, err := b.store.Claim(ctxT(t), state.ClaimArgs{Request: req, Owner: owner, Delivery: 1, Start: true})
	require.NoError(t, err)
	require.NotNil(t, c.Held, "claim ended: %+v", c.Ended)
	p, ok := c.Held.Processing(b.clock.Now())
	require.True(t, ok)
	return p
}

func (b *bundle) counts(t testing.TB, id string) lifecycle.Counts {
	t.Helper()
	bt, err := b.store.Batch(ctxT(t), id)
	require.NoError(t, err)
	return bt.Counts
}

func failure(code lifecycle.FailureCode, status int) *lifecycle.Failure {
	return lifecycle.NewFailure(code, status, "upstream said %d", status)
}

// errOf drops a call's value and keeps its error.
func errOf[T any](_ T, err error) error { return err }

// createOpen records an open batch (Total 0) expiring in 24h.
func (b *bundle) createOpen(t testing.TB, id string) lifecycle.Batch {
	t.Helper()
	return b.createBatch(t, id, 0)
}

// batch reads a batch and requires it to exist.
func (b *bundle) batch(t testing.TB, id string) lifecycle.Batch {
	t.Helper()
	bt, err := b.store.Batch(ctxT(t), id)
	require.NoError(t, err)
	return bt
}

// publish marks the results of refs published, one call each, and returns
// the batches that turned final, in call order.
func (b *bundle) publish(t testing.TB, refs ...lifecycle.Ref) []lifecycle.Batch {
	t.Helper()
	var final []lifecycle.Batch
	for _, ref := range refs {
		f, err := b.store.MarkPublished(ctxT(t), []lifecycle.Ref{ref})
		require.NoError(t, err)
		final = append(final, f...)
	}
	return final
}

// refs names requests of batch.
func refs(batch string, ids ...string) []lifecycle.Ref {
	out := make([]lifecycle.Ref, len(ids))
	for i, id := range ids {
		out[i] = lifecycle.Ref{ID: id, BatchID: batch}
	}
	return out
}

// field reads one raw field of a request's record (fields no Record
// exposes, such as counted and pub_counted).
func (b *bundle) field(t testing.TB, ref lifecycle.Ref, name string) string {
	t.Helper()
	v, err := b.redis.Client.HGet(ctxT(t), b.cfg.Prefix+":{"+ref.BatchID+"}:req:"+ref.ID, name).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	require.NoError(t, err)
	return v
}

// batchField reads one raw field of a batch hash (fields no Batch exposes,
// such as seen, outcome and the event outboxes).
func (b *bundle) batchField(t testing.TB, id, name string) string {
	t.Helper()
	v, err := b.redis.Client.HGet(ctxT(t), b.cfg.Prefix+":{"+id+"}:batch", name).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	require.NoError(t, err)
	return v
}

// claimOf claims req for owner into processing and returns the raw answer.
func (b *bundle) claimOf(t testing.TB, req *lifecycle.Request, owner string) (lifecycle.Claim, error) {
	t.Helper()
	return b.store.Claim(ctxT(t), state.ClaimArgs{Request: req, Owner: owner, Delivery: 1, Start: true})
}

// ended claims req and requires the claim to end it.
func (b *bundle) ended(t testing.TB, req *lifecycle.Request, owner string) *lifecycle.Ended {
	t.Helper()
	c, err := b.claimOf(t, req, owner)
	require.NoError(t, err)
	require.NotNil(t, c.Ended, "claim held: %+v", c.Held)
	return c.Ended
}
