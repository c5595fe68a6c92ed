package state_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// MarkPublished counts the result of each request its batch counts once:
// a re-mark, a second result of a soft cancel replaced by the holder's, a
// stray, a batchless request and a record gone by retention add nothing.
func TestMarkPublishedCountsEachResultOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 3)
	p1 := b.claim(t, request("r1", "b1"), "w")
	_, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)
	require.Empty(t, b.publish(t, p1.Ref, p1.Ref))
	require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{p1.Ref, p1.Ref})))
	require.Equal(t, int64(1), b.batch(t, "b1").ResultsPublished)
	require.Equal(t, "1", b.field(t, p1.Ref, "pub_counted"))

	// a soft cancel replaced by the holder's real result: one result
	p2 := b.claim(t, request("r2", "b1"), "w")
	_, err = b.store.CancelRequest(ctx, p2.Ref)
	require.NoError(t, err)
	_, err = b.store.Complete(ctx, p2, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)
	b.publish(t, p2.Ref, p2.Ref)
	require.Equal(t, int64(2), b.batch(t, "b1").ResultsPublished)

	solo := request("solo", "")
	ps := b.claim(t, solo, "w")
	_, err = b.store.Complete(ctx, ps, state.Outcome{Status: 200})
	require.NoError(t, err)
	b.publish(t, solo.Ref(), lifecycle.Ref{ID: "gone", BatchID: "b1"})
	rec, err := b.store.Request(ctx, solo.Ref())
	require.NoError(t, err)
	require.True(t, rec.Published)
	_, err = b.store.Request(ctx, lifecycle.Ref{ID: "gone", BatchID: "b1"})
	require.ErrorIs(t, err, state.ErrNotFound, "marking a missing record creates none")
	require.Equal(t, int64(2), b.batch(t, "b1").ResultsPublished)
}

// The two steps of the end of a batch: the call that ends its last
// request makes it finalizing (with its finalizing_at) and says so; the
// mark that counts its last expected result turns it final (status, its
// time, finalized_at, the final event due, retention TTL) and returns it;
// later marks return nothing.
func TestBatchIsFinalizingUntilItsLastResultIsOut(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *state.Config) { c.Retention = time.Hour })
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	p1 := b.claim(t, request("r1", "b1"), "w")
	p2 := b.claim(t, request("r2", "b1"), "w")
	_, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200, Result: []byte("a")})
	require.NoError(t, err)
	require.Empty(t, b.publish(t, p1.Ref), "r2 is still running")

	b.clock.Advance(time.Minute)
	tr, err := b.store.Fail(ctx, p2.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400), Result: []byte("b")})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	fin := *tr.Finalized
	require.Equal(t, lifecycle.BatchFinalizing, fin.Status)
	require.Equal(t, b.clock.Now(), fin.FinalizingAt)
	require.True(t, fin.FinalizedAt.IsZero())
	require.True(t, fin.CompletedAt.IsZero())
	require.Equal(t, "completed", b.batchField(t, "b1", "outcome"))
	require.Empty(t, b.batchField(t, "b1", "evt_final"), "no final event before the batch is final")
	got, err := b.store.ClaimBatchEvent(ctx, "b1", lifecycle.EventCompleted, 0)
	require.NoError(t, err)
	require.Nil(t, got)
	ttl, err := b.redis.Client.PTTL(ctx, b.cfg.Prefix+":{b1}:batch").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 24*time.Hour, "a finalizing batch keeps expires_at + retention")

	b.clock.Advance(time.Minute)
	final := b.publish(t, p2.Ref)
	require.Len(t, final, 1)
	bt := final[0]
	require.Equal(t, lifecycle.BatchCompleted, bt.Status, "one request completed")
	require.Equal(t, b.clock.Now(), bt.FinalizedAt)
	require.Equal(t, b.clock.Now(), bt.CompletedAt)
	require.Equal(t, fin.FinalizingAt, bt.FinalizingAt)
	require.Equal(t, int64(2), bt.ResultsPublished)
	require.Zero(t, bt.ResultsMissing)
	require.Equal(t, bt, b.batch(t, "b1"))
	require.Equal(t, "pending", b.batchField(t, "b1", "evt_final"))
	ttl, err = b.redis.Client.PTTL(ctx, b.cfg.Prefix+":{b1}:batch").Result()
	require.NoError(t, err)
	require.LessOrEqual(t, ttl, time.Hour)
	require.Greater(t, ttl, 59*time.Minute)
	require.Empty(t, b.publish(t, p2.Ref, p1.Ref), "turned final once")
	fb, err := b.store.FinishBatch(ctx, "b1")
	require.NoError(t, err)
	require.Nil(t, fb)
}

// A batch whose requests have all ended and whose results are all out
// does not turn final while a racing copy runs (escalating > 0): the
// copy's end turns it final at once, and only that call is told.
func TestTheEndOfTheLastRacingCopyTurnsTheBatchFinal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	p1 := b.claim(t, request("r1", "b1"), "w")
	_, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200, Result: []byte("a")})
	require.NoError(t, err)
	p2 := b.claim(t, request("r2", "b1"), "w")
	cp := b.race(t, p2.Ref)
	_, err = b.store.Fail(ctx, p2.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400), Result: []byte("b")})
	require.NoError(t, err)
	require.Empty(t, b.publish(t, p1.Ref, p2.Ref), "r2's copy still runs")
	require.Equal(t, lifecycle.BatchFinalizing, b.batch(t, "b1").Status)
	require.Equal(t, int64(1), b.batch(t, "b1").Escalating)

	pc := b.claim(t, cp, "w2")
	tr, err := b.store.Fail(ctx, pc.Held(), state.Outcome{Failure: failure(lifecycle.CodeRetriableStatus, 503)})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchCompleted, tr.Finalized.Status)
	require.Zero(t, tr.Finalized.Escalating)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Failed: 1}, tr.Finalized.Counts, "the copy is in no counter")
	require.Equal(t, "pending", b.batchField(t, "b1", "evt_final"))
	require.Empty(t, b.publish(t, cp.Ref()), "the failed copy's mark counts nothing and turns nothing final again")
	require.Equal(t, int64(2), b.batch(t, "b1").ResultsPublished)
}

// FinishBatch forces a finalizing batch final with the shortfall as
// results_missing; it does nothing to a running, final or unknown batch.
func TestFinishBatchForcesTheEndWithResultsMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 4)
	p1 := b.claim(t, request("r1", "b1"), "w")
	p2 := b.claim(t, request("r2", "b1"), "w")
	_, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200, Result: []byte("a")})
	require.NoError(t, err)
	b.publish(t, p1.Ref)

	fb, err := b.store.FinishBatch(ctx, "b1")
	require.NoError(t, err)
	require.Nil(t, fb, "r2 is running")
	fb, err = b.store.FinishBatch(ctx, "nope")
	require.NoError(t, err)
	require.Nil(t, fb)

	_, err = b.store.Supersede(ctx, lifecycle.Ref{ID: "r3", BatchID: "b1"}, "copy-r3")
	require.NoError(t, err)
	b.clock.Advance(time.Hour)
	tr, err := b.store.ExpireBatch(ctx, "b1") // not yet: expires_at is 24h
	require.ErrorIs(t, err, lifecycle.ErrNotYet)
	require.False(t, tr.Applied)
	tr, err = b.store.CancelBatch(ctx, "b1") // r4, never seen, is canceled
	require.NoError(t, err)
	require.Nil(t, tr.Finalized)
	tr, err = b.store.Fail(ctx, p2.Held(), state.Outcome{Failure: failure(lifecycle.CodeTimeout, 0), Result: []byte("b")})
	require.NoError(t, err)
	require.Equal(t, lifecycle.BatchCancelling, tr.Finalized.Status)

	// r2's and r4's results never come (r4's message was lost).
	b.clock.Advance(time.Minute)
	fb, err = b.store.FinishBatch(ctx, "b1")
	require.NoError(t, err)
	require.NotNil(t, fb)
	require.Equal(t, lifecycle.BatchCancelled, fb.Status)
	require.Equal(t, b.clock.Now(), fb.CancelledAt)
	require.Equal(t, b.clock.Now(), fb.FinalizedAt)
	require.Equal(t, int64(1), fb.ResultsPublished)
	require.Equal(t, int64(3), fb.ResultsMissing, "4 requests, 1 result out (r3's winner never published one)")
	require.Equal(t, lifecycle.Counts{Total: 4, Completed: 1, Failed: 1, Canceled: 1, Superseded: 1}, fb.Counts)
	require.Equal(t, "pending", b.batchField(t, "b1", "evt_final"))

	again, err := b.store.FinishBatch(ctx, "b1")
	require.NoError(t, err)
	require.Nil(t, again, "final already")
	require.Empty(t, b.publish(t, p2.Ref), "a late result counts but turns nothing final")
	require.Equal(t, int64(2), b.batch(t, "b1").ResultsPublished)
}

// A failed original whose result was published and counted, then
// overturned by its copy's success, is counted once: its failure line stops
// counting when the copy supersedes it, so the batch waits for the copy's
// line, which counts once marked.
func TestACopyOverturningAPublishedFailureCountsTheOriginalOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	p1, cp := b.pair(t, 2)
	_, err := b.store.Fail(ctx, p1.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400), Result: []byte("failed")})
	require.NoError(t, err)
	require.Empty(t, b.publish(t, p1.Ref))
	require.Equal(t, int64(1), b.batch(t, "b1").ResultsPublished)

	pc := b.claim(t, cp, "w2")
	tr, err := b.store.Complete(ctx, pc, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, p1.Ref.ID, tr.Superseded, "the failed original is overturned")
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 1, Superseded: 1}, b.counts(t, "b1"))
	require.Zero(t, b.batch(t, "b1").ResultsPublished, "the failure line no longer counts")
	require.Empty(t, b.publish(t, p1.Ref), "a late mark of the failure counts nothing")
	require.Empty(t, b.publish(t, cp.Ref()))
	require.Equal(t, int64(1), b.batch(t, "b1").ResultsPublished, "r1 counted once: its copy's line")

	p2 := b.claim(t, request("r2", "b1"), "w")
	_, err = b.store.Complete(ctx, p2, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)
	final := b.publish(t, p2.Ref)
	require.Len(t, final, 1)
	require.Equal(t, int64(2), final[0].ResultsPublished)
	require.Equal(t, lifecycle.BatchCompleted, final[0].Status)
}

// A superseded request's result (the failure a supersede keeps, published
// on a redelivery) is not one the batch waits for, so marking it must not
// count: the batch waits for the others'.
func TestPublishingASupersededRequestDoesNotCountAsAResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	p1 := b.claim(t, request("r1", "b1"), "w")
	_, err := b.store.Fail(ctx, p1.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400), Result: []byte("failed")})
	require.NoError(t, err)
	_, err = b.store.Supersede(ctx, p1.Ref, "copy-r1")
	require.NoError(t, err)
	e := b.ended(t, request("r1", "b1"), "w2")
	require.Equal(t, []byte("failed"), e.Outbox, "a redelivery finds the failure line to publish")
	require.Empty(t, b.publish(t, p1.Ref))

	p2 := b.claim(t, request("r2", "b1"), "w")
	tr, err := b.store.Complete(ctx, p2, state.Outcome{Status: 200, Result: []byte("ok")})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status, "r2's result is not out yet")
}
