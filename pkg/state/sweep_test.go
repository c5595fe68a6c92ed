package state_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// ExpireBatch refuses a batch before its expires_at; past it the batch is
// expiring and sealed, its queued requests count expired at once, its
// in-flight ones end by their holders, and it turns expired when their
// results are out.
func TestExpireBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 4)
	p1 := b.claim(t, request("r1", "b1"), "w")
	p2 := b.claim(t, request("r2", "b1"), "w")
	_, err := b.store.Complete(ctx, p2, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)

	_, err = b.store.ExpireBatch(ctx, "b1")
	var ny *lifecycle.NotYetError
	require.ErrorAs(t, err, &ny)
	require.Equal(t, base.Add(24*time.Hour), ny.NotBefore)
	_, err = b.store.ExpireBatch(ctx, "nope")
	require.ErrorIs(t, err, lifecycle.ErrNotFound)

	b.clock.Advance(24 * time.Hour)
	tr, err := b.store.ExpireBatch(ctx, "b1")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Nil(t, tr.Finalized, "r1 is in flight")
	require.Equal(t, lifecycle.Counts{Total: 4, InProgress: 1, Completed: 1, Expired: 2}, b.counts(t, "b1"))
	again, err := b.store.ExpireBatch(ctx, "b1")
	require.NoError(t, err)
	require.False(t, again.Applied)

	// A queued request read now ends expired without a counter move.
	e := b.ended(t, request("r3", "b1"), "w")
	require.Equal(t, lifecycle.StateExpired, e.State)
	require.Equal(t, lifecycle.Counts{Total: 4, InProgress: 1, Completed: 1, Expired: 2}, b.counts(t, "b1"))

	tr, err = b.store.Expire(ctx, p1.Held(), state.Outcome{})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status)
	require.Equal(t, "expired", b.batchField(t, "b1", "outcome"), "an expiring batch ends expired")
	fb, err := b.store.FinishBatch(ctx, "b1") // r4's message is gone
	require.NoError(t, err)
	require.Equal(t, lifecycle.BatchExpired, fb.Status)
	require.Equal(t, b.clock.Now(), fb.ExpiredAt)
	require.Equal(t, int64(4), fb.ResultsMissing)
}

// ExpireBatch leaves a cancelled batch and a finalizing one alone, and
// seals an open batch at the requests it has seen.
func TestExpireBatchLeavesCancelledAndFinalizingBatchesAloneAndSealsOpenOnes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "cancelled", 2)
	b.claim(t, request("r1", "cancelled"), "w")
	_, err := b.store.CancelBatch(ctx, "cancelled")
	require.NoError(t, err)

	b.createBatch(t, "finalizing", 1)
	p := b.claim(t, request("r1", "finalizing"), "w")
	_, err = b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)

	b.createOpen(t, "open")
	b.claim(t, request("r1", "open"), "w")

	b.clock.Advance(25 * time.Hour)
	for _, id := range []string{"cancelled", "finalizing"} {
		before := b.batch(t, id)
		tr, err := b.store.ExpireBatch(ctx, id)
		require.NoError(t, err, id)
		require.False(t, tr.Applied, id)
		require.Equal(t, before, b.batch(t, id), id)
	}
	tr, err := b.store.ExpireBatch(ctx, "open")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	bt := b.batch(t, "open")
	require.True(t, bt.Sealed)
	require.Equal(t, lifecycle.Counts{Total: 1, InProgress: 1}, bt.Counts)
	e := b.ended(t, request("r2", "open"), "w")
	require.Equal(t, lifecycle.CodeMalformedMessage, e.Failure.Code, "sealed at what it saw")
}

// Stranded lists the in-flight requests whose lease ended, oldest first,
// with the stream sequence of their claim; EndStranded ends one with the
// fence moved (its old holder writes nothing more), the counters follow
// and the batch may end.
func TestStrandedAndEndStranded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 3)
	claim := func(id string, seq uint64) lifecycle.Held {
		c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request(id, "b1"), Owner: "w", Seq: seq, Start: true})
		require.NoError(t, err)
		require.NotNil(t, c.Held)
		return *c.Held
	}
	h1 := claim("r1", 11)
	b.clock.Advance(10 * time.Second)
	h2 := claim("r2", 12)
	b.clock.Advance(10 * time.Second)
	h3 := claim("r3", 0)

	got, err := b.store.Stranded(ctx, "b1", base.Add(45*time.Second), 10)
	require.NoError(t, err)
	require.Equal(t, []state.StrandedEntry{
		{Ref: h1.Ref, LeaseExpires: base.Add(30 * time.Second), Seq: 11},
		{Ref: h2.Ref, LeaseExpires: base.Add(40 * time.Second), Seq: 12},
	}, got)
	got, err = b.store.Stranded(ctx, "b1", base.Add(time.Hour), 1)
	require.NoError(t, err)
	require.Len(t, got, 1, "limit")
	got, err = b.store.Stranded(ctx, "b1", base, 10)
	require.NoError(t, err)
	require.Empty(t, got)

	f := failure(lifecycle.CodeBatchExpired, 0)
	// r2's lease ends after lease_before: left alone.
	tr, err := b.store.EndStranded(ctx, h2.Ref, base.Add(30*time.Second), lifecycle.StateExpired, f)
	require.NoError(t, err)
	require.False(t, tr.Applied)
	require.Equal(t, lifecycle.StateProcessing, tr.State)

	tr, err = b.store.EndStranded(ctx, h1.Ref, base.Add(30*time.Second), lifecycle.StateExpired, f)
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateExpired, tr.State)
	require.Equal(t, lifecycle.StateProcessing, tr.Previous)
	require.Nil(t, tr.Finalized)
	require.Equal(t, lifecycle.Counts{Total: 3, InProgress: 2, Expired: 1}, b.counts(t, "b1"))
	rec, err := b.store.Request(ctx, h1.Ref)
	require.NoError(t, err)
	require.Equal(t, h1.Lease.Token+1, rec.Token, "the fence moved")
	require.Empty(t, rec.Owner)
	require.Equal(t, lifecycle.CodeBatchExpired, rec.Failure.Code)

	// The old holder comes back: nothing it writes lands.
	p1, _ := h1.Processing(base)
	late, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200, Result: []byte("late")})
	require.NoError(t, err, "the request is hard terminal: the late result is dropped")
	require.False(t, late.Applied)
	require.ErrorIs(t, b.store.Refresh(ctx, []lifecycle.Held{h1})[0], state.ErrLeaseLost)
	rec, err = b.store.Request(ctx, h1.Ref)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateExpired, rec.State)
	require.Nil(t, rec.Outbox)

	again, err := b.store.EndStranded(ctx, h1.Ref, base.Add(time.Hour), lifecycle.StateFailed, f)
	require.NoError(t, err)
	require.False(t, again.Applied, "ended already")

	// A refreshed lease (now until base+50s) is live again: not stranded
	// before then.
	require.NoError(t, b.store.Refresh(ctx, []lifecycle.Held{h3})[0])
	tr, err = b.store.EndStranded(ctx, h3.Ref, base.Add(49*time.Second), lifecycle.StateFailed, f)
	require.NoError(t, err)
	require.False(t, tr.Applied)

	_, err = b.store.EndStranded(ctx, h2.Ref, base.Add(time.Hour), lifecycle.StateCompleted, f)
	require.ErrorIs(t, err, state.ErrInvalidOutcome)
	_, err = b.store.EndStranded(ctx, h2.Ref, base.Add(time.Hour), lifecycle.StateFailed, nil)
	require.ErrorIs(t, err, state.ErrInvalidOutcome)

	tr, err = b.store.EndStranded(ctx, h2.Ref, base.Add(time.Hour), lifecycle.StateFailed,
		failure(lifecycle.CodeMalformedMessage, 0))
	require.NoError(t, err)
	require.True(t, tr.Applied)
	b.clock.Advance(time.Hour)
	tr, err = b.store.EndStranded(ctx, h3.Ref, b.clock.Now(), lifecycle.StateFailed, f)
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.NotNil(t, tr.Finalized, "the last in-flight request ended")
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 3, Failed: 2, Expired: 1}, tr.Finalized.Counts)
	// Ended by the sweep, each waits in the lease index (score 0) until its
	// result is marked published, so a failed publish is tried again.
	got, err = b.store.Stranded(ctx, "b1", b.clock.Now(), 10)
	require.NoError(t, err)
	require.Len(t, got, 3, "results due")
	for _, e := range got {
		require.True(t, e.LeaseExpires.IsZero(), "score 0: result due")
	}
	b.publish(t, h1.Ref, h2.Ref)
	got, err = b.store.Stranded(ctx, "b1", b.clock.Now(), 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the marked ones left the index")
	require.Equal(t, h3.Ref.ID, got[0].Ref.ID)
	b.publish(t, h3.Ref)
	got, err = b.store.Stranded(ctx, "b1", b.clock.Now(), 10)
	require.NoError(t, err)
	require.Empty(t, got, "out of the lease index")
}

// A stranded request whose record is gone by retention is reported not
// found and leaves the lease index.
func TestEndStrandedOfAGoneRecordLeavesTheLeaseIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	h := b.claim(t, request("r1", "b1"), "w")
	require.NoError(t, b.redis.Client.Del(ctx, b.cfg.Prefix+":{b1}:req:r1").Err())
	_, err := b.store.EndStranded(ctx, h.Ref, base.Add(time.Hour), lifecycle.StateExpired, failure(lifecycle.CodeBatchExpired, 0))
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	got, err := b.store.Stranded(ctx, "b1", base.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, got)
}

// The batch event outbox: created is due from creation, the final event
// from the batch turning final. A claim takes a due event when it has
// waited stale since it was set or last taken, and returns the batch; once
// done, nothing is taken. BatchEventsOut says when both are done.
func TestBatchEventOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	claim := func(typ lifecycle.BatchEventType, stale time.Duration) *lifecycle.Batch {
		t.Helper()
		got, err := b.store.ClaimBatchEvent(ctx, "b1", typ, stale)
		require.NoError(t, err)
		return got
	}
	require.Nil(t, claim(lifecycle.EventCreated, time.Minute), "set just now: the creator publishes it")
	got := claim(lifecycle.EventCreated, 0)
	require.NotNil(t, got)
	require.Equal(t, "b1", got.ID)
	require.Nil(t, claim(lifecycle.EventCreated, time.Minute), "taken just now")
	b.clock.Advance(time.Minute)
	require.NotNil(t, claim(lifecycle.EventCreated, time.Minute), "its publisher is late: take it over")
	out, err := b.store.BatchEventsOut(ctx, "b1")
	require.NoError(t, err)
	require.False(t, out)
	require.NoError(t, b.store.BatchEventDone(ctx, "b1", lifecycle.EventCreated))
	require.Nil(t, claim(lifecycle.EventCreated, 0), "published")
	require.NoError(t, b.store.BatchEventDone(ctx, "b1", lifecycle.EventCreated), "done twice is fine")

	require.Nil(t, claim(lifecycle.EventCompleted, 0), "not final yet")
	out, err = b.store.BatchEventsOut(ctx, "b1")
	require.NoError(t, err)
	require.False(t, out, "no final event yet")

	p := b.claim(t, request("r1", "b1"), "w")
	_, err = b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)
	require.Nil(t, claim(lifecycle.EventCompleted, 0), "finalizing is not final")
	require.Len(t, b.publish(t, p.Ref), 1)

	require.Nil(t, claim(lifecycle.EventFailed, 0), "the batch completed; no failed event")
	got = claim(lifecycle.EventCompleted, 0)
	require.NotNil(t, got)
	require.Equal(t, lifecycle.BatchCompleted, got.Status)
	require.NoError(t, b.store.BatchEventDone(ctx, "b1", lifecycle.EventCompleted))
	require.Nil(t, claim(lifecycle.EventCompleted, 0))
	out, err = b.store.BatchEventsOut(ctx, "b1")
	require.NoError(t, err)
	require.True(t, out)

	got, err = b.store.ClaimBatchEvent(ctx, "nope", lifecycle.EventCreated, 0)
	require.NoError(t, err)
	require.Nil(t, got)
}

// One sweep leader at a time: the lock is taken when free, kept (and
// renewed) by its holder, refused to others, and free again when its TTL
// runs out.
func TestHoldSweepLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	key := b.cfg.Prefix + ":sweep:lock"
	held := func(holder string, ttl time.Duration) bool {
		t.Helper()
		ok, err := b.store.HoldSweepLock(ctx, holder, ttl)
		require.NoError(t, err)
		return ok
	}
	require.True(t, held("a", time.Minute))
	require.False(t, held("b", time.Minute))
	require.True(t, held("a", time.Hour), "the holder renews")
	ttl, err := b.redis.Client.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 59*time.Minute)
	require.False(t, held("b", time.Minute))

	require.True(t, held("a", 50*time.Millisecond))
	require.Eventually(t, func() bool {
		ok, err := b.store.HoldSweepLock(ctx, "b", time.Minute)
		return err == nil && ok
	}, 5*time.Second, 10*time.Millisecond, "a's lock runs out")
	require.False(t, held("a", time.Minute))
}

// LiveBatches lists the batches the sweep watches, soonest expires_at
// first, until DropLive.
func TestLiveBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	for i, id := range []string{"late", "soon", "mid"} {
		_, _, err := b.store.CreateBatch(ctx, state.NewBatch{
			ID: id, CompletionWindow: "24h", CreatedAt: base,
			ExpiresAt: base.Add(time.Duration([]int{30, 10, 20}[i]) * time.Hour), Total: 1,
		})
		require.NoError(t, err)
	}
	ids, err := b.store.LiveBatches(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"soon", "mid", "late"}, ids)
	ids, err = b.store.LiveBatches(ctx, 0, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"soon", "mid"}, ids)
	require.NoError(t, b.store.DropLive(ctx, "mid"))
	require.NoError(t, b.store.DropLive(ctx, "mid"), "dropping twice is fine")
	ids, err = b.store.LiveBatches(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"soon", "late"}, ids)
}

// A Retry or Release of an in-flight request after ExpireBatch: the batch
// counts its queued requests expired (not pending), so the request must
// land there (or end expired at once, as a cancelled batch ends it
// canceled). Moving it into pending leaves the counters off a recount and
// the batch never finishes.
func TestRequeueInAnExpiringBatchKeepsCountersExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	reqs := []*lifecycle.Request{request("r1", "b1"), request("r2", "b1")}
	p := b.claim(t, reqs[0], "w")
	b.clock.Advance(24 * time.Hour)
	_, err := b.store.ExpireBatch(ctx, "b1")
	require.NoError(t, err)

	_, err = b.store.Release(ctx, p.Held(), true) // shutdown
	require.NoError(t, err)
	requireRecount(t, b, reqs)

	e := b.ended(t, reqs[0], "w2") // the redelivery
	require.Equal(t, lifecycle.StateExpired, e.State)
	requireRecount(t, b, reqs)
	require.Equal(t, lifecycle.Counts{Total: 2, Expired: 2}, b.counts(t, "b1"))
	require.Equal(t, lifecycle.BatchFinalizing, b.batch(t, "b1").Status)
}

// CancelBatch after ExpireBatch: the queued requests are counted expired;
// the cancel then makes their later claims end them canceled (the
// cancelled flag wins in the claim) without moving them out of expired,
// so the counters end off a recount.
func TestCancelAfterExpireKeepsCountersExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 3)
	reqs := []*lifecycle.Request{request("r1", "b1"), request("r2", "b1"), request("r3", "b1")}
	p := b.claim(t, reqs[0], "w")
	h2 := b.claim(t, reqs[1], "w")
	_, err := b.store.Retry(ctx, h2, failure(lifecycle.CodeRetriableStatus, 503), base)
	require.NoError(t, err) // r2: pending with a record
	b.clock.Advance(24 * time.Hour)
	_, err = b.store.ExpireBatch(ctx, "b1")
	require.NoError(t, err)
	_, err = b.store.CancelBatch(ctx, "b1")
	require.NoError(t, err)

	for _, req := range reqs[1:] {
		b.ended(t, req, "w2")
	}
	_, err = b.store.Expire(ctx, p.Held(), state.Outcome{})
	require.NoError(t, err)
	requireRecount(t, b, reqs) // every request has ended: no queued one to place
}

// A supersede of a stray (a request its sealed batch does not count,
// ended failed) must leave the counters alone, as every other move of a
// stray does.
func TestSupersedeOfAStrayLeavesTheCountersAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	b.claim(t, request("r1", "b1"), "w")
	stray := request("stray", "b1")
	require.Equal(t, lifecycle.CodeMalformedMessage, b.ended(t, stray, "w").Failure.Code)
	want := lifecycle.Counts{Total: 1, InProgress: 1}
	require.Equal(t, want, b.counts(t, "b1"))

	_, err := b.store.Supersede(ctx, stray.Ref(), "copy-stray")
	require.NoError(t, err)
	require.Equal(t, want, b.counts(t, "b1"), "the stray was never counted failed")
}

// TestTrimBatchIndexDropsOnlyBatchesPastEveryRetention: the list index
// keeps a batch as long as its key could exist (created_at + the longest
// window + retention) and drops it after.
func TestTrimBatchIndexDropsOnlyBatchesPastEveryRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "old", 1)
	n, err := b.store.TrimBatchIndex(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a fresh batch stays listed")
	b.clock.Advance(lifecycle.MaxCompletionWindow + b.store.Config().Retention + time.Millisecond)
	n, err = b.store.TrimBatchIndex(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	page, err := b.store.ListBatches(ctx, lifecycle.BatchQuery{})
	require.NoError(t, err)
	require.Empty(t, page.Batches)
}
