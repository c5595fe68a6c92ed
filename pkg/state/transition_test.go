package state_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

func TestLateCompletedAfterFailedIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")

	tr, err := b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400), Result: []byte("failed-line")})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateFailed, tr.State)
	require.Equal(t, lifecycle.StateProcessing, tr.Previous)

	tr, err = b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("late-line")})
	require.NoError(t, err, "a dropped terminal write is not an error")
	require.False(t, tr.Applied)
	require.Equal(t, lifecycle.StateFailed, tr.State)

	// A redelivered copy sees the first result, with its outbox.
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w2", Start: true})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateFailed, c.Ended.State)
	require.False(t, c.Ended.JustEnded)
	require.Equal(t, []byte("failed-line"), c.Ended.Outbox)
	require.Equal(t, 400, c.Ended.Status)
	require.Equal(t, 1, c.Ended.Attempts)
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 1, Failed: 1}, b.counts(t, "b1"))

	require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})))
	c, err = b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w3", Start: true})
	require.NoError(t, err)
	require.True(t, c.Ended.Published)
	require.Nil(t, c.Ended.Outbox)
}

func TestLateCompletedAfterCanceledWinsAndRepairsCounters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")

	tr, err := b.store.CancelRequest(ctx, req.Ref())
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateCanceled, tr.State)
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 1, Canceled: 1}, b.counts(t, "b1"))

	// A stranger's late result does not replace the cancel.
	stranger := p
	stranger.Lease.Token++
	_, err = b.store.Complete(ctx, stranger, state.Outcome{Status: 200})
	require.ErrorIs(t, err, state.ErrLeaseLost)

	tr, err = b.store.Complete(ctx, p, state.Outcome{Status: 200, RoutedModel: "gpt-4o-mini", Result: []byte("ok-line")})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateCompleted, tr.State)
	require.Equal(t, lifecycle.StateCanceled, tr.Previous)
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 1, Completed: 1}, b.counts(t, "b1"))

	rec, err := b.store.Request(ctx, req.Ref())
	require.NoError(t, err)
	require.Equal(t, "gpt-4o-mini", rec.RoutedModel)
	require.Nil(t, rec.Failure, "the cancel's error is cleared by the real result")
	require.Equal(t, 1, rec.Attempt)

	// The request now is hard terminal: a second cancel or result is dropped.
	tr, err = b.store.CancelRequest(ctx, req.Ref())
	require.NoError(t, err)
	require.False(t, tr.Applied)
	tr, err = b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeTimeout, 0)})
	require.NoError(t, err)
	require.False(t, tr.Applied)
}

func TestCancelRequestNeverClaimed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")
	tr, err := b.store.CancelRequest(ctx, req.Ref())
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status, "the batch was not cancelled; its request was")

	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w1", Start: true})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCanceled, c.Ended.State)
	require.False(t, c.Ended.JustEnded)
	require.Equal(t, lifecycle.CodeRequestCanceled, c.Ended.Failure.Code)

	// Nothing is left to count: an unknown id is not found.
	_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "ghost", BatchID: "b1"})
	require.ErrorIs(t, err, state.ErrNotFound)

	final := b.publish(t, req.Ref())
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCancelled, final[0].Status, "every request was canceled")
}

func TestAttemptsCountFromTheStartAndReleaseWithoutACallTakesItBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 1)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")
	require.Equal(t, 1, p.Attempt, "the claim into processing counts the attempt it starts")
	tr, err := b.store.Release(ctx, p.Held(), false)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StatePending, tr.State)
	require.Equal(t, lifecycle.Counts{Total: 1, Pending: 1}, b.counts(t, "b1"))

	p = b.claim(t, req, "w2")
	require.Equal(t, 1, p.Attempt, "released before its call: the attempt was taken back")
	_, err = b.store.Release(ctx, p.Held(), true)
	require.NoError(t, err)
	p = b.claim(t, req, "w3")
	require.Equal(t, 2, p.Attempt, "released after a call (cut short): the attempt stays counted")
	_, err = b.store.Retry(ctx, p, failure(lifecycle.CodeRetriableStatus, 500), time.Time{})
	require.NoError(t, err)
	p = b.claim(t, req, "w4")
	require.Equal(t, 3, p.Attempt)
	_, err = b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeUnroutedModel, 0), Uncalled: true})
	require.NoError(t, err)
	rec, err := b.store.Request(ctx, req.Ref())
	require.NoError(t, err)
	require.Equal(t, 2, rec.Attempt, "ended without its call: the attempt was taken back")

	// Retry needs processing: a claimed holder may not retry.
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request("x", ""), Owner: "w"})
	require.NoError(t, err)
	cp := lifecycle.Processing{Ref: c.Held.Ref, Lease: c.Held.Lease}
	_, err = b.store.Retry(ctx, cp, failure(lifecycle.CodeTimeout, 0), time.Time{})
	require.ErrorIs(t, err, state.ErrIllegalTransition)
	_, err = b.store.Complete(ctx, cp, state.Outcome{Status: 200})
	require.ErrorIs(t, err, state.ErrIllegalTransition)
	_, err = b.store.Fail(ctx, *c.Held, state.Outcome{})
	require.ErrorIs(t, err, state.ErrInvalidOutcome)
}

func TestForceFailFencesTheHolder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")
	tr, err := b.store.ForceFail(ctx, req, state.Outcome{Failure: failure(lifecycle.CodeMaxDeliveries, 0)})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateProcessing, tr.Previous)
	tr, err = b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.False(t, tr.Applied, "failed is hard: the holder's result is dropped")

	// A poison message never claimed gets a failed record.
	tr, err = b.store.ForceFail(ctx, request("r2", "b1"), state.Outcome{Failure: failure(lifecycle.CodeMalformedMessage, 0)})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StatePending, tr.Previous)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Failed: 2}, tr.Finalized.Counts)
	final := b.publish(t, refs("b1", "r1", "r2")...)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchFailed, final[0].Status)
}

func TestLateResultAfterPublishedCancelIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")

	_, err := b.store.CancelRequest(ctx, req.Ref())
	require.NoError(t, err)
	require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})), "the cancel's result went out")
	want := lifecycle.Counts{Total: 2, Pending: 1, Canceled: 1}
	require.Equal(t, want, b.counts(t, "b1"))

	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("late-line")})
	require.NoError(t, err, "a dropped result is not an error")
	require.False(t, tr.Applied)
	require.Equal(t, lifecycle.StateCanceled, tr.State)
	tr, err = b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400)})
	require.NoError(t, err)
	require.False(t, tr.Applied)
	require.Equal(t, lifecycle.StateCanceled, tr.State)
	require.Equal(t, want, b.counts(t, "b1"), "counters stay")

	rec, err := b.store.Request(ctx, req.Ref())
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCanceled, rec.State)
	require.True(t, rec.Published)
	require.Nil(t, rec.Outbox, "no second result line is stored")
	require.Equal(t, lifecycle.CodeRequestCanceled, rec.Failure.Code)
}
