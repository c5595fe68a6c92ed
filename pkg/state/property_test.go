package state_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// TestCountersEqualRecountUnderRandomConcurrentWorkload runs thousands of
// random transitions from concurrent workers (claims, completions,
// failures, retries, releases, cancels, expiries, refreshes, abandoned
// leases, control-plane cancels, poison fails and one batch cancel) while
// the clock moves, then checks that the batch counters equal a recount of
// the request records, and that exactly one call finalized the batch.
func TestCountersEqualRecountUnderRandomConcurrentWorkload(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *state.Config) { c.MaxReclaims = 3 })
	ctx := ctxT(t)
	const (
		requests = 1000
		workers  = 16
		opsEach  = 300
	)
	b.createBatch(t, "pb", requests)
	reqs := make([]*lifecycle.Request, requests)
	seed := rand.New(rand.NewPCG(1, 2))
	for i := range reqs {
		reqs[i] = request(fmt.Sprintf("r%03d", i), "pb")
		reqs[i].ExpiresAt = base.Add(30*time.Minute + time.Duration(seed.IntN(120))*time.Minute)
	}

	var (
		finalizers  atomic.Int32
		transitions atomic.Int64
		cancelOnce  sync.Once
		cancelled   atomic.Bool
		wg          sync.WaitGroup
	)
	note := func(fin *lifecycle.Batch) {
		if fin != nil {
			finalizers.Add(1)
		}
	}
	// allowed: errors a racing workload legitimately meets.
	allowed := func(err error) bool {
		return err == nil || errors.Is(err, state.ErrLeaseLost) || errors.Is(err, state.ErrLeaseHeld) ||
			errors.Is(err, state.ErrNotYet) || errors.Is(err, state.ErrIllegalTransition) ||
			errors.Is(err, state.ErrNotFound)
	}
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 99))
			owner := fmt.Sprintf("w%d", w)
			for op := range opsEach {
				b.clock.Advance(time.Duration(rnd.IntN(2000)) * time.Millisecond)
				req := reqs[rnd.IntN(requests)]
				if w == 0 && op == opsEach/3 {
					cancelOnce.Do(func() {
						tr, err := b.store.CancelBatch(ctx, "pb")
						if err != nil {
							t.Errorf("cancel batch: %v", err)
						}
						cancelled.Store(tr.Applied)
						note(tr.Finalized)
					})
				}
				switch rnd.IntN(20) {
				case 0:
					tr, err := b.store.CancelRequest(ctx, req.Ref())
					if !allowed(err) {
						t.Errorf("cancel request: %v", err)
					}
					note(tr.Finalized)
					transitions.Add(1)
					continue
				case 1:
					tr, err := b.store.ForceFail(ctx, req, state.Outcome{Failure: failure(lifecycle.CodeMaxDeliveries, 0)})
					if !allowed(err) {
						t.Errorf("force fail: %v", err)
					}
					note(tr.Finalized)
					transitions.Add(1)
					continue
				}
				c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: owner, Delivery: uint64(op), Start: rnd.IntN(6) > 0})
				transitions.Add(1)
				if !allowed(err) {
					t.Errorf("claim: %v", err)
					return
				}
				if err != nil {
					continue
				}
				if c.Ended != nil {
					note(c.Ended.Finalized)
					continue
				}
				h := *c.Held
				p, processing := h.Processing(b.clock.Now())
				var tr state.Transition
				switch k := rnd.IntN(9); {
				case k == 0 && processing:
					tr, err = b.store.Retry(ctx, p, failure(lifecycle.CodeRetriableStatus, 503),
						b.clock.Now().Add(time.Duration(rnd.IntN(3000))*time.Millisecond))
				case k == 1:
					tr, err = b.store.Release(ctx, h, true)
				case k == 2:
					tr, err = b.store.Fail(ctx, h, state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400)})
				case k == 3:
					tr, err = b.store.Cancel(ctx, h, state.Outcome{})
				case k == 4:
					tr, err = b.store.Expire(ctx, h, state.Outcome{})
				case k == 5:
					err = b.store.Refresh(ctx, []lifecycle.Held{h})[0]
				case k == 6:
					// abandon: the lease expires and someone reclaims
				default:
					if processing {
						tr, err = b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("x")})
					}
				}
				transitions.Add(1)
				if !allowed(err) {
					t.Errorf("transition: %v", err)
				}
				note(tr.Finalized)
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	t.Logf("%d transitions attempted; counts before drain %+v", transitions.Load(), b.counts(t, "pb"))
	require.Equal(t, recount(t, b, reqs), b.counts(t, "pb"), "counters equal a recount after the workload")
	requireLeaseIndexMatches(t, b, reqs)

	// Drain: past every deadline, each remaining request ends on claim.
	b.clock.Advance(24 * time.Hour)
	for _, req := range reqs {
		c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "drain", Start: true})
		require.NoError(t, err)
		require.NotNil(t, c.Ended)
		note(c.Ended.Finalized)
	}
	counts := b.counts(t, "pb")
	require.Equal(t, recount(t, b, reqs), counts)
	require.Equal(t, int64(requests), counts.Terminal())
	require.Equal(t, int32(1), finalizers.Load(), "exactly one call finalized the batch")
	requireLeaseIndexMatches(t, b, reqs)
	bt, err := b.store.Batch(ctx, "pb")
	require.NoError(t, err)
	if cancelled.Load() {
		require.Equal(t, lifecycle.BatchCancelled, bt.Status)
	} else {
		require.Contains(t, []lifecycle.BatchStatus{lifecycle.BatchCompleted, lifecycle.BatchFailed}, bt.Status)
	}
}

// recount derives the counters from the records alone.
func recount(t *testing.T, b *bundle, reqs []*lifecycle.Request) lifecycle.Counts {
	t.Helper()
	ctx := ctxT(t)
	bt, err := b.store.Batch(ctx, reqs[0].BatchID)
	require.NoError(t, err)
	cancelled := !bt.CancellingAt.IsZero()
	c := lifecycle.Counts{Total: int64(len(reqs))}
	for _, req := range reqs {
		st := lifecycle.StatePending
		rec, err := b.store.Request(ctx, req.Ref())
		switch {
		case err == nil:
			st = rec.State
		case !errors.Is(err, state.ErrNotFound):
			require.NoError(t, err)
		}
		switch st {
		case lifecycle.StatePending:
			if cancelled {
				c.Canceled++
			} else {
				c.Pending++
			}
		case lifecycle.StateClaimed, lifecycle.StateProcessing:
			c.InProgress++
		case lifecycle.StateCompleted:
			c.Completed++
		case lifecycle.StateFailed:
			c.Failed++
		case lifecycle.StateCanceled:
			c.Canceled++
		case lifecycle.StateSuperseded:
			c.Superseded++
		case lifecycle.StateExpired:
			c.Expired++
		}
	}
	return c
}

// requireLeaseIndexMatches checks that the batch's lease index holds exactly
// the in-flight records, each with its record's lease expiry.
func requireLeaseIndexMatches(t *testing.T, b *bundle, reqs []*lifecycle.Request) {
	t.Helper()
	ctx := ctxT(t)
	want := map[string]time.Time{}
	for _, req := range reqs {
		rec, err := b.store.Request(ctx, req.Ref())
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		require.NoError(t, err)
		if rec.State.InFlight() {
			want[req.ID] = rec.LeaseExpires
		}
	}
	entries, err := b.store.ExpiredLeases(ctx, reqs[0].BatchID, b.clock.Now().Add(1000*time.Hour), int64(len(reqs)+1))
	require.NoError(t, err)
	got := map[string]time.Time{}
	for _, e := range entries {
		got[e.Ref.ID] = e.Expires
	}
	require.Equal(t, want, got)
}
