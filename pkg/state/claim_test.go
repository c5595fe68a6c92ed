package state_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// raceClaim has n goroutines claim req at once and returns the winners.
func raceClaim(t *testing.T, b *bundle, req *lifecycle.Request, n int, round string) []lifecycle.Held {
	t.Helper()
	var (
		mu      sync.Mutex
		winners []lifecycle.Held
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	ctx := ctxT(t)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := b.store.Claim(ctx, state.ClaimArgs{
				Request: req, Owner: fmt.Sprintf("%s-w%d", round, i), Delivery: 1, Start: true,
			})
			if err != nil {
				errs[i] = err
				return
			}
			if c.Held == nil {
				errs[i] = fmt.Errorf("claim ended: %+v", c.Ended)
				return
			}
			mu.Lock()
			winners = append(winners, *c.Held)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			continue
		}
		var held *state.LeaseHeldError
		require.ErrorAs(t, err, &held, "every loser sees the live lease")
		require.ErrorIs(t, err, state.ErrLeaseHeld)
	}
	return winners
}

func TestClaim64GoroutinesOneWinnerThenOneReclaimer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")

	first := raceClaim(t, b, req, 64, "first")
	require.Len(t, first, 1, "exactly one claimer wins")
	old := first[0]
	require.Equal(t, lifecycle.StateProcessing, old.State)
	require.Equal(t, int64(1), old.Lease.Token)
	require.Equal(t, base.Add(30*time.Second), old.Lease.Expires)

	b.clock.Advance(31 * time.Second) // the winner's lease expires
	second := raceClaim(t, b, req, 64, "second")
	require.Len(t, second, 1, "exactly one reclaimer wins")
	cur := second[0]
	require.Greater(t, cur.Lease.Token, old.Lease.Token, "the fencing token strictly increases")

	oldP, ok := old.Processing(base)
	require.True(t, ok)
	f := failure(lifecycle.CodeRetriableStatus, 503)
	_, err := b.store.Complete(ctx, oldP, state.Outcome{Status: 200, Result: []byte(`{"zombie":true}`)})
	require.ErrorIs(t, err, state.ErrLeaseLost)
	_, err = b.store.Fail(ctx, old, state.Outcome{Failure: f})
	require.ErrorIs(t, err, state.ErrLeaseLost)
	_, err = b.store.Cancel(ctx, old, state.Outcome{})
	require.ErrorIs(t, err, state.ErrLeaseLost)
	_, err = b.store.Expire(ctx, old, state.Outcome{})
	require.ErrorIs(t, err, state.ErrLeaseLost)
	_, err = b.store.Retry(ctx, oldP, f, b.clock.Now())
	require.ErrorIs(t, err, state.ErrLeaseLost)
	_, err = b.store.Release(ctx, old, true)
	require.ErrorIs(t, err, state.ErrLeaseLost)
	require.ErrorIs(t, b.store.Refresh(ctx, []lifecycle.Held{old})[0], state.ErrLeaseLost)

	rec, err := b.store.Request(ctx, req.Ref())
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateProcessing, rec.State, "no old-owner write landed")
	require.Equal(t, cur.Lease.Owner, rec.Owner)
	require.Equal(t, cur.Lease.Token, rec.Token)
	require.Equal(t, 1, rec.Reclaims)

	curP, _ := cur.Processing(b.clock.Now())
	tr, err := b.store.Complete(ctx, curP, state.Outcome{Status: 200, Result: []byte(`{"ok":true}`)})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateCompleted, tr.State)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 1, Completed: 1}, b.counts(t, "b1"))
	final := b.publish(t, req.Ref())
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCompleted, final[0].Status)
}

func TestExpiredLeaseHolderMayWriteUntilReclaimed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	p := b.claim(t, request("r1", "b1"), "w1")
	b.clock.Advance(time.Hour)
	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.True(t, tr.Applied, "lease expiry only matters to a new claimer")
}

func TestClaimWithoutStartLeavesTheRequestClaimed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request("r1", "b1"), Owner: "w1", Delivery: 3})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateClaimed, c.Held.State)
	_, processing := c.Held.Processing(b.clock.Now())
	require.False(t, processing, "only a claim with Start gives a Processing")

	bt, err := b.store.Batch(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, lifecycle.BatchInProgress, bt.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 1, InProgress: 1}, bt.Counts)

	rec, err := b.store.Request(ctx, c.Held.Ref)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateClaimed, rec.State)
	require.Equal(t, uint64(3), rec.Delivery)
	require.Equal(t, "gpt-4o", rec.Model)
	require.Equal(t, "c-r1", rec.CustomID)
	require.Equal(t, base, rec.ClaimedAt)
	require.True(t, rec.StartedAt.IsZero())

	tr, err := b.store.Release(ctx, *c.Held, false)
	require.NoError(t, err)
	require.Equal(t, state.Transition{State: lifecycle.StatePending, Previous: lifecycle.StateClaimed, Applied: true}, tr)
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 2}, b.counts(t, "b1"))
}

func TestClaimRetryNotBefore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")
	nb := base.Add(5 * time.Second)
	tr, err := b.store.Retry(ctx, p, failure(lifecycle.CodeRetriableStatus, 429), nb)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StatePending, tr.State)
	require.Equal(t, lifecycle.Counts{Total: 1, Pending: 1}, b.counts(t, "b1"))

	_, err = b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w2", Start: true})
	var ny *state.NotYetError
	require.ErrorAs(t, err, &ny)
	require.ErrorIs(t, err, state.ErrNotYet)
	require.Equal(t, nb, ny.NotBefore)

	b.clock.Advance(5 * time.Second)
	p2 := b.claim(t, req, "w2")
	require.Equal(t, 2, p2.Attempt, "the first attempt stays spent; the claim counted the second")
	require.Greater(t, p2.Lease.Token, p.Lease.Token)
	rec, err := b.store.Request(ctx, req.Ref())
	require.NoError(t, err)
	require.Equal(t, lifecycle.CodeRetriableStatus, rec.Failure.Code)
	require.Equal(t, 429, rec.Status)
}

func TestClaimPastExpiresAtEndsExpired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")
	req.ExpiresAt = base.Add(time.Minute)
	b.clock.Advance(time.Minute)
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w1", Start: true})
	require.NoError(t, err)
	require.Nil(t, c.Held)
	require.Equal(t, lifecycle.StateExpired, c.Ended.State)
	require.True(t, c.Ended.JustEnded)
	require.Equal(t, lifecycle.CodeBatchExpired, c.Ended.Failure.Code)
	require.NotNil(t, c.Ended.Finalized, "the last request's claim ends the batch's last request")
	require.Equal(t, lifecycle.BatchFinalizing, c.Ended.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 1, Expired: 1}, c.Ended.Finalized.Counts)

	again, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w2", Start: true})
	require.NoError(t, err)
	require.False(t, again.Ended.JustEnded)
	require.Nil(t, again.Ended.Finalized)

	final := b.publish(t, req.Ref())
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchFailed, final[0].Status, "the request expired, the batch is not past its expires_at")
}

func TestReclaimBeyondMaxReclaimsFails(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *state.Config) { c.MaxReclaims = 2 })
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")
	b.claim(t, req, "w0")
	for i := 1; i <= 2; i++ {
		b.clock.Advance(31 * time.Second)
		b.claim(t, req, fmt.Sprintf("w%d", i))
	}
	b.clock.Advance(31 * time.Second)
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w3", Start: true})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateFailed, c.Ended.State)
	require.True(t, c.Ended.JustEnded)
	require.Equal(t, lifecycle.CodeMaxDeliveries, c.Ended.Failure.Code)
	require.Equal(t, lifecycle.Counts{Total: 1, Failed: 1}, b.counts(t, "b1"))
}

func TestBatchlessRunsWithoutCountersAndAnUnknownBatchIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	solo := request("solo", "")
	p := b.claim(t, solo, "w1")
	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("line")})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Nil(t, tr.Finalized)
	rec, err := b.store.Request(ctx, solo.Ref())
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCompleted, rec.State)
	require.Equal(t, []byte("line"), rec.Outbox)
	require.Empty(t, b.publish(t, solo.Ref()))

	_, err = b.claimOf(t, request("r1", "no-such-batch"), "w1")
	require.ErrorIs(t, err, lifecycle.ErrNoBatch)
	_, err = b.store.Batch(ctx, "no-such-batch")
	require.ErrorIs(t, err, state.ErrNotFound)
	keys, err := b.redis.Keys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1, "only the batchless record; the refused claim wrote nothing: %v", keys)
}

func TestClaimInvalidArgs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.Claim(ctxT(t), state.ClaimArgs{Owner: "w"})
	require.True(t, errors.Is(err, state.ErrInvalidClaim))
}

func TestLeaseIndexFollowsClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 3)
	p1 := b.claim(t, request("r1", "b1"), "w")
	b.clock.Advance(10 * time.Second)
	p2 := b.claim(t, request("r2", "b1"), "w")
	b.clock.Advance(10 * time.Second)
	require.NoError(t, b.store.Refresh(ctx, []lifecycle.Held{p1.Held()})[0])

	// p2's lease (base+40s) now ends before p1's (base+50s).
	dead, err := b.store.ExpiredLeases(ctx, "b1", base.Add(45*time.Second), 10)
	require.NoError(t, err)
	require.Equal(t, []state.LeaseEntry{{Ref: p2.Ref, Expires: base.Add(40 * time.Second)}}, dead)

	_, err = b.store.Complete(ctx, p2, state.Outcome{Status: 200})
	require.NoError(t, err)
	all, err := b.store.ExpiredLeases(ctx, "b1", base.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []state.LeaseEntry{{Ref: p1.Ref, Expires: base.Add(50 * time.Second)}}, all)
}

func TestRequestBeyondBatchTotalIsRefusedUncounted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	p1 := b.claim(t, request("r1", "b1"), "w")
	b.claim(t, request("r2", "b1"), "w")
	want := lifecycle.Counts{Total: 2, InProgress: 2}

	extra := request("r3", "b1")
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: extra, Owner: "w", Delivery: 1, Start: true})
	require.NoError(t, err)
	require.Nil(t, c.Held)
	require.Equal(t, lifecycle.StateFailed, c.Ended.State)
	require.True(t, c.Ended.JustEnded)
	require.Nil(t, c.Ended.Finalized)
	require.Equal(t, lifecycle.CodeMalformedMessage, c.Ended.Failure.Code)
	require.Equal(t, "request r3 is not part of batch b1 (its 2 requests are all accounted for)", c.Ended.Failure.Message)
	require.Equal(t, want, b.counts(t, "b1"), "no counter moves")

	rec, err := b.store.Request(ctx, extra.Ref())
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateFailed, rec.State)
	require.Equal(t, lifecycle.CodeMalformedMessage, rec.Failure.Code)
	require.Equal(t, "0", b.field(t, extra.Ref(), "counted"), "the batch does not count it")
	ttl, err := b.redis.Client.PTTL(ctx, b.redis.Prefix+":{b1}:req:r3").Result()
	require.NoError(t, err)
	require.Positive(t, ttl, "the record gets the usual retention")
	require.LessOrEqual(t, ttl, b.cfg.Retention)

	// A redelivered copy sees the recorded failure.
	c, err = b.store.Claim(ctx, state.ClaimArgs{Request: extra, Owner: "w2", Start: true})
	require.NoError(t, err)
	require.False(t, c.Ended.JustEnded)
	require.Equal(t, lifecycle.CodeMalformedMessage, c.Ended.Failure.Code)

	// ForceFail of another stray id records the failure uncounted.
	tr, err := b.store.ForceFail(ctx, request("r4", "b1"), state.Outcome{Failure: failure(lifecycle.CodeMalformedMessage, 0)})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Nil(t, tr.Finalized)
	require.Equal(t, want, b.counts(t, "b1"))
	rec, err = b.store.Request(ctx, lifecycle.Ref{ID: "r4", BatchID: "b1"})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateFailed, rec.State)

	// The batch's own requests still finish it; a stray after that changes nothing.
	tr, err = b.store.Complete(ctx, p1, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.Nil(t, tr.Finalized)
	c, err = b.store.Claim(ctx, state.ClaimArgs{Request: request("r5", "b1"), Owner: "w", Start: true})
	require.NoError(t, err)
	require.Equal(t, lifecycle.CodeMalformedMessage, c.Ended.Failure.Code)
	require.Equal(t, lifecycle.Counts{Total: 2, InProgress: 1, Completed: 1}, b.counts(t, "b1"))
}

func TestClaimPastBatchExpiresAtEndsExpiredAndBatchExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	_, _, err := b.store.CreateBatch(ctx, state.NewBatch{
		ID: "b1", CompletionWindow: "1h", Endpoint: "/v1/chat/completions",
		CreatedAt: base, ExpiresAt: base.Add(time.Hour), Total: 2,
	})
	require.NoError(t, err)
	p := b.claim(t, request("r1", "b1"), "w") // the request's own deadline is base+24h
	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.Nil(t, tr.Finalized)

	b.clock.Advance(time.Hour) // exactly the batch's expires_at
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request("r2", "b1"), Owner: "w", Start: true})
	require.NoError(t, err)
	require.Nil(t, c.Held, "no claim at or after the batch's expires_at")
	require.Equal(t, lifecycle.StateExpired, c.Ended.State)
	require.True(t, c.Ended.JustEnded)
	require.Equal(t, lifecycle.CodeBatchExpired, c.Ended.Failure.Code)
	require.NotNil(t, c.Ended.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, c.Ended.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Expired: 1}, c.Ended.Finalized.Counts)
	final := b.publish(t, refs("b1", "r1", "r2")...)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchExpired, final[0].Status, "a request expired and the batch is past expires_at")
	require.Equal(t, b.clock.Now(), final[0].ExpiredAt)
}

func TestCancelledWinsOverBatchExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	_, _, err := b.store.CreateBatch(ctx, state.NewBatch{
		ID: "b1", CompletionWindow: "1h", Endpoint: "/v1/chat/completions",
		CreatedAt: base, ExpiresAt: base.Add(time.Hour), Total: 2,
	})
	require.NoError(t, err)
	p := b.claim(t, request("r1", "b1"), "w")
	_, err = b.store.CancelBatch(ctx, "b1")
	require.NoError(t, err)
	b.clock.Advance(2 * time.Hour)
	tr, err := b.store.Expire(ctx, p.Held(), state.Outcome{})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchCancelling, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Canceled: 1, Expired: 1}, tr.Finalized.Counts)

	// r2, counted canceled at the cancel, ends canceled (not expired) when
	// its message is read.
	e := b.ended(t, request("r2", "b1"), "w")
	require.Equal(t, lifecycle.StateCanceled, e.State)
	final := b.publish(t, refs("b1", "r1", "r2")...)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCancelled, final[0].Status)
}

// A request naming a batch that has no record, with no record of its own,
// is refused with lifecycle.ErrNoBatch and nothing is written; once the
// batch exists the same request runs. A request that has a record goes on
// even when its batch record is gone (uncounted).
func TestClaimInAnUnknownBatchIsRefusedUntilTheBatchExists(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	req := request("r1", "later")
	_, err := b.claimOf(t, req, "w")
	require.ErrorIs(t, err, lifecycle.ErrNoBatch)
	require.NotErrorIs(t, err, state.ErrNotFound, "the caller holds the message; it does not drop it")
	keys, err := b.redis.Keys(ctx)
	require.NoError(t, err)
	require.Empty(t, keys)

	b.createBatch(t, "later", 1)
	p := b.claim(t, req, "w")
	require.Equal(t, lifecycle.Counts{Total: 1, InProgress: 1}, b.counts(t, "later"))

	require.NoError(t, b.redis.Client.Del(ctx, b.cfg.Prefix+":{later}:batch").Err())
	b.clock.Advance(time.Minute)
	c, err := b.claimOf(t, req, "w2")
	require.NoError(t, err, "the request has a record")
	require.NotNil(t, c.Held)
	require.Equal(t, c.Held.Deadline, req.ExpiresAt, "no batch deadline any more")
	p2, _ := c.Held.Processing(b.clock.Now())
	tr, err := b.store.Complete(ctx, p2, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	_, err = b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
}

// Held.Deadline is the earlier of the request's expires_at and its
// batch's (either alone when the other is unset).
func TestHeldDeadlineIsTheEarlierOfTheRequestsAndItsBatchs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 4) // expires at base+24h
	for _, tc := range []struct {
		id      string
		batch   string
		expires time.Time
		want    time.Time
	}{
		{"own-earlier", "b1", base.Add(time.Hour), base.Add(time.Hour)},
		{"batch-earlier", "b1", base.Add(48 * time.Hour), base.Add(24 * time.Hour)},
		{"own-unset", "b1", time.Time{}, base.Add(24 * time.Hour)},
		{"solo", "", base.Add(2 * time.Hour), base.Add(2 * time.Hour)},
		{"solo-unset", "", time.Time{}, time.Time{}},
	} {
		req := request(tc.id, tc.batch)
		req.ExpiresAt = tc.expires
		c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w", Start: true})
		require.NoError(t, err, tc.id)
		require.NotNil(t, c.Held, tc.id)
		require.Equal(t, tc.want, c.Held.Deadline, tc.id)
	}
}

// A claim whose answer was lost (the connection cut with the reply on the
// way) is retried by the same delivery: it gets its own lease back, with
// the same token and the attempt counted once. A redelivered copy (another
// delivery count) or a duplicate message (another stream sequence) of the
// same owner is still refused.
func TestTheSameDeliveryClaimingAgainGetsItsLeaseBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")
	args := state.ClaimArgs{Request: req, Owner: "w1", Delivery: 2, Seq: 17, Start: true}
	first, err := b.store.Claim(ctx, args)
	require.NoError(t, err)
	again, err := b.store.Claim(ctx, args)
	require.NoError(t, err)
	require.NotNil(t, again.Held)
	require.Equal(t, first.Held.Lease, again.Held.Lease)
	require.Equal(t, 1, again.Held.Attempt)
	require.Equal(t, lifecycle.StateProcessing, again.Held.State)
	rec, err := b.store.Request(ctx, req.Ref())
	require.NoError(t, err)
	require.Equal(t, 1, rec.Attempt, "the attempt is counted once")
	require.Equal(t, lifecycle.Counts{Total: 1, InProgress: 1}, b.counts(t, "b1"))

	for _, other := range []state.ClaimArgs{
		{Request: req, Owner: "w1", Delivery: 3, Seq: 17, Start: true}, // redelivered
		{Request: req, Owner: "w1", Delivery: 2, Seq: 18, Start: true}, // a duplicate message
		{Request: req, Owner: "w2", Delivery: 2, Seq: 17, Start: true}, // another worker
	} {
		_, err := b.store.Claim(ctx, other)
		var held *state.LeaseHeldError
		require.ErrorAs(t, err, &held, "%+v", other)
	}
}
