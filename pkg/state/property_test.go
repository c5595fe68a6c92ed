package state_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
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
// leases, control-plane cancels, racing copies (escalation) that run like
// requests, poison fails, published results and one batch cancel) on a sealed batch while the clock moves,
// then checks that the batch counters (seen and published included) equal
// a recount of the request records (escalating: a recount of the copies
// not ended), that exactly one call ended the
// batch's last request, and that exactly one call turned it final once
// every result was out.
func TestCountersEqualRecountUnderRandomConcurrentWorkload(t *testing.T) {
	t.Parallel()
	runWorkload(t, false, true)
}

// The same workload without the batch cancel, so racing copies run,
// complete, supersede their originals and lose to them all along.
func TestCountersEqualRecountWithRacingPairsUnderRandomConcurrentWorkload(t *testing.T) {
	t.Parallel()
	runWorkload(t, false, false)
}

// The same workload on an open batch: requests are counted as they first
// arrive, racing each other, and one worker seals the batch midway (at 900
// when it has seen no more, else at 1000), so the requests a seal at 900
// leaves out end as strays no counter sees.
func TestCountersEqualRecountUnderRandomConcurrentWorkloadOnAnOpenBatch(t *testing.T) {
	t.Parallel()
	runWorkload(t, true, true)
}

func runWorkload(t *testing.T, open, cancel bool) {
	b := setup(t, func(c *state.Config) { c.MaxReclaims = 3 })
	ctx := ctxT(t)
	const (
		requests = 1000
		workers  = 16
		opsEach  = 300
	)
	if open {
		b.createOpen(t, "pb")
	} else {
		b.createBatch(t, "pb", requests)
	}
	reqs := make([]*lifecycle.Request, requests)
	copies := make([]*lifecycle.Request, requests) // racing copies (escalation)
	escalated := make([]atomic.Bool, requests)     // copies[i] has a record
	seed := rand.New(rand.NewPCG(1, 2))
	for i := range reqs {
		reqs[i] = request(fmt.Sprintf("r%03d", i), "pb")
		reqs[i].ExpiresAt = base.Add(30*time.Minute + time.Duration(seed.IntN(120))*time.Minute)
		cp := *reqs[i]
		cp.ID, _ = lifecycle.CopyID(cp.ID)
		cp.Model = "fast"
		copies[i] = &cp
	}

	var (
		lastEnders  atomic.Int32 // calls that ended the batch's last request
		finalizers  atomic.Int32 // calls that turned the batch final
		transitions atomic.Int64
		cancelOnce  sync.Once
		sealOnce    sync.Once
		cancelled   atomic.Bool
		wg          sync.WaitGroup
	)
	note := func(fin *lifecycle.Batch) {
		if fin != nil {
			lastEnders.Add(1)
			if fin.Status.Terminal() {
				finalizers.Add(1)
			}
		}
	}
	noteFinal := func(final []lifecycle.Batch) {
		finalizers.Add(int32(len(final)))
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
				i := rnd.IntN(requests)
				req := reqs[i]
				isCopy := escalated[i].Load() && rnd.IntN(2) == 0
				if isCopy {
					req = copies[i]
				}
				// a copy's end may turn the batch final, but never ends
				// the batch's last request
				note := note
				if isCopy {
					note = func(fin *lifecycle.Batch) {
						if fin != nil && fin.Status.Terminal() {
							finalizers.Add(1)
						}
					}
				}
				if cancel && w == 0 && op == opsEach/3 {
					cancelOnce.Do(func() {
						tr, err := b.store.CancelBatch(ctx, "pb")
						if err != nil {
							t.Errorf("cancel batch: %v", err)
						}
						cancelled.Store(tr.Applied)
						note(tr.Finalized)
					})
				}
				if open && w == 1 && op == opsEach/4 {
					sealOnce.Do(func() {
						_, _, err := b.store.SealBatch(ctx, "pb", 900)
						if errors.Is(err, state.ErrInvalidBatch) { // seen more than 900
							_, _, err = b.store.SealBatch(ctx, "pb", requests)
						}
						if err != nil && !errors.Is(err, state.ErrBatchConflict) { // the cancel sealed it
							t.Errorf("seal batch: %v", err)
						}
					})
				}
				switch rnd.IntN(20) {
				case 0:
					if isCopy {
						continue // the client cancels its own requests, not copies
					}
					tr, err := b.store.CancelRequest(ctx, req.Ref())
					if !allowed(err) {
						t.Errorf("cancel request: %v", err)
					}
					note(tr.Finalized)
					transitions.Add(1)
					continue
				case 1:
					if isCopy {
						continue
					}
					tr, err := b.store.ForceFail(ctx, req, state.Outcome{Failure: failure(lifecycle.CodeMaxDeliveries, 0)})
					if !allowed(err) {
						t.Errorf("force fail: %v", err)
					}
					note(tr.Finalized)
					transitions.Add(1)
					continue
				case 2, 5, 6, 7:
					started, _, err := b.store.Escalate(ctx, reqs[i].Ref(), "fast")
					if err != nil {
						t.Errorf("escalate: %v", err)
					}
					if started {
						escalated[i].Store(true)
					}
					transitions.Add(1)
					continue
				case 3, 4:
					// publish the result of an ended request, as the worker does
					rec, err := b.store.Request(ctx, req.Ref())
					if !allowed(err) {
						t.Errorf("read request: %v", err)
					}
					if err == nil && rec.State.Terminal() {
						final, err := b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})
						if err != nil {
							t.Errorf("mark published: %v", err)
						}
						noteFinal(final)
					}
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
	withCopies := func() []*lifecycle.Request {
		all := append([]*lifecycle.Request{}, reqs...)
		for i := range copies {
			if escalated[i].Load() {
				all = append(all, copies[i])
			}
		}
		return all
	}
	t.Logf("%d transitions attempted, %d copies started; counts before drain %+v", transitions.Load(), len(withCopies())-len(reqs), b.counts(t, "pb"))
	requireRecount(t, b, withCopies())
	requireLeaseIndexMatches(t, b, withCopies())
	bt := b.batch(t, "pb")
	require.True(t, bt.Sealed, "sealed at creation, by the seal or by the cancel")
	if open {
		require.Contains(t, []int64{900, requests, mustInt(t, b.batchField(t, "pb", "seen"))}, bt.Counts.Total)
	} else {
		require.Equal(t, int64(requests), bt.Counts.Total)
	}

	// Drain: past every deadline, each remaining request ends on claim.
	b.clock.Advance(24 * time.Hour)
	for _, req := range withCopies() {
		c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "drain", Start: true})
		require.NoError(t, err)
		require.NotNil(t, c.Ended)
		if _, ok := lifecycle.OriginalID(req.ID); !ok {
			note(c.Ended.Finalized)
		}
	}
	counts := requireRecount(t, b, withCopies())
	require.Equal(t, counts.Total, counts.Terminal())
	require.Equal(t, int32(1), lastEnders.Load(), "exactly one call ended the batch's last request")
	require.Zero(t, b.batch(t, "pb").Escalating, "every copy ended")
	requireLeaseIndexMatches(t, b, withCopies())

	// Every result goes out: exactly one call turned the batch final.
	for _, req := range withCopies() {
		final, err := b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})
		require.NoError(t, err)
		noteFinal(final)
	}
	require.Equal(t, int32(1), finalizers.Load(), "exactly one call turned the batch final")
	requireRecount(t, b, withCopies())
	bt = b.batch(t, "pb")
	require.Equal(t, bt.Counts.Total, bt.ResultsPublished, "one result per request: its own, or its winning copy's")
	require.Zero(t, bt.ResultsMissing)
	if cancelled.Load() {
		require.Equal(t, lifecycle.BatchCancelled, bt.Status)
	} else {
		// the drain ends what is left past the deadline: expired then
		require.Contains(t, []lifecycle.BatchStatus{lifecycle.BatchCompleted, lifecycle.BatchFailed, lifecycle.BatchExpired}, bt.Status)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}

// requireRecount derives the counters from the records alone and requires
// the batch's to equal them: each bucket, seen (the records the batch
// counts) and published (the counted records whose result was counted:
// its own line, or for a superseded original its winning copy's).
// The requests the batch counts but has not seen yet are pending (canceled
// in a cancelled batch, expired in an expiring one), as are the pending
// records. Records the batch does not count
// (strays) are in no counter. It returns the batch's counts.
func requireRecount(t *testing.T, b *bundle, reqs []*lifecycle.Request) lifecycle.Counts {
	t.Helper()
	ctx := ctxT(t)
	id := reqs[0].BatchID
	bt := b.batch(t, id)
	cancelled := !bt.CancellingAt.IsZero()
	expiring := b.batchField(t, id, "expiring") == "1"
	c := lifecycle.Counts{Total: bt.Counts.Total}
	pendingLike := func() *int64 {
		switch {
		case cancelled:
			return &c.Canceled
		case expiring:
			return &c.Expired
		}
		return &c.Pending
	}
	var seen, published, escalating int64
	for _, req := range reqs {
		v, err := b.redis.Client.HMGet(ctx, b.cfg.Prefix+":{"+id+"}:req:"+req.ID, "state", "counted", "pub_counted", "esc_open").Result()
		require.NoError(t, err)
		if v[0] == nil {
			continue // not seen yet
		}
		if v[3] == "1" {
			escalating++ // a racing copy not ended yet
		}
		if v[1] != "1" {
			continue // a stray or a racing copy: not one of the batch's requests
		}
		seen++
		if v[2] == "1" {
			published++
		}
		if st := lifecycle.State(v[0].(string)); st == lifecycle.StatePending {
			*pendingLike()++
		} else {
			c.Count(st)
		}
	}
	*pendingLike() += bt.Counts.Total - seen
	require.Equal(t, c, bt.Counts, "counters equal a recount of the records")
	require.Equal(t, strconv.FormatInt(seen, 10), b.batchField(t, id, "seen"), "seen equals the records the batch counts")
	require.Equal(t, published, bt.ResultsPublished, "published equals the counted records whose result was counted")
	require.Equal(t, escalating, bt.Escalating, "escalating equals the racing copies not ended yet")
	if !bt.Sealed {
		require.Equal(t, seen, bt.Counts.Total, "an open batch's total is what it has seen")
	}
	return bt.Counts
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
