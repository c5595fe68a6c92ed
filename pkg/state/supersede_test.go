package state_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// Supersede follows the transition table: pending, claimed, processing and
// failed become superseded with the counters moved in the same script and
// the loser's holder fenced out; every other state is left alone.
func TestSupersedeFollowsTheTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 8)

	// pending, never claimed
	tr, err := b.store.Supersede(ctx, lifecycle.Ref{ID: "queued", BatchID: "b1"}, "copy-queued")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StatePending, tr.Previous)

	// processing: the loser's late result is refused
	loser := b.claim(t, request("inflight", "b1"), "w1")
	tr, err = b.store.Supersede(ctx, loser.Ref, "copy-inflight")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateProcessing, tr.Previous)
	late, err := b.store.Complete(ctx, loser, state.Outcome{Status: 200, Result: []byte("late")})
	require.NoError(t, err)
	require.False(t, late.Applied, "the loser's late result is dropped")
	require.Equal(t, lifecycle.StateSuperseded, late.State)
	require.Len(t, b.store.Refresh(ctx, []lifecycle.Held{loser.Held()}), 1)
	require.ErrorIs(t, b.store.Refresh(ctx, []lifecycle.Held{loser.Held()})[0], state.ErrLeaseLost, "the loser's lease is gone")
	rec, err := b.store.Request(ctx, loser.Ref)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateSuperseded, rec.State)
	require.Equal(t, "copy-inflight", rec.SupersededBy)

	// failed: a failed original is overturned by its copy's success
	p := b.claim(t, request("failed", "b1"), "w1")
	_, err = b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400)})
	require.NoError(t, err)
	tr, err = b.store.Supersede(ctx, p.Ref, "copy-failed")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateFailed, tr.Previous)

	// completed, canceled and expired are left alone
	p = b.claim(t, request("done", "b1"), "w1")
	_, err = b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	p2 := b.claim(t, request("cancelled", "b1"), "w1")
	_, err = b.store.Cancel(ctx, p2.Held(), state.Outcome{Failure: failure(lifecycle.CodeRequestCanceled, 0)})
	require.NoError(t, err)
	p3 := b.claim(t, request("late", "b1"), "w1")
	_, err = b.store.Expire(ctx, p3.Held(), state.Outcome{Failure: failure(lifecycle.CodeBatchExpired, 0)})
	require.NoError(t, err)
	for _, id := range []string{"done", "cancelled", "late"} {
		tr, err = b.store.Supersede(ctx, lifecycle.Ref{ID: id, BatchID: "b1"}, "copy-"+id)
		require.NoError(t, err)
		require.False(t, tr.Applied, id)
	}
	require.Equal(t, lifecycle.Counts{Total: 8, Pending: 2, Completed: 1, Canceled: 1, Expired: 1, Superseded: 3}, b.counts(t, "b1"))

	// the winner's id is required
	_, err = b.store.Supersede(ctx, lifecycle.Ref{ID: "x", BatchID: "b1"}, "")
	require.ErrorIs(t, err, state.ErrInvalidOutcome)
}

// Superseding the last open request ends its batch's last request, and only
// that call is told; the superseded request publishes no result of its own:
// the batch waits for its winner's line (a racing copy's, mark_published).
func TestSupersedeOfTheLastRequestFinalizesTheBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b2", 2)
	p := b.claim(t, request("a", "b2"), "w1")
	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.Nil(t, tr.Finalized)
	loser := b.claim(t, request("b", "b2"), "w2")
	tr, err = b.store.Supersede(ctx, loser.Ref, "copy-b")
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Superseded: 1}, b.counts(t, "b2"))

	tr, err = b.store.Supersede(ctx, loser.Ref, "copy-b")
	require.NoError(t, err)
	require.False(t, tr.Applied)
	require.Nil(t, tr.Finalized, "finalized once")

	require.Empty(t, b.publish(t, p.Ref, loser.Ref), "b's own mark counts nothing: the batch waits for its winner's line")
	require.Equal(t, int64(1), b.batch(t, "b2").ResultsPublished)
	require.Equal(t, lifecycle.BatchFinalizing, b.batch(t, "b2").Status)
}
