package state_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// race starts the racing copy of the request ref on model "fast" and
// returns the copy's request message.
func (b *bundle) race(t testing.TB, ref lifecycle.Ref) *lifecycle.Request {
	t.Helper()
	started, reason, err := b.store.Escalate(ctxT(t), ref, "fast")
	require.NoError(t, err)
	require.True(t, started, reason)
	cp := request(ref.ID, ref.BatchID)
	cp.ID, _ = lifecycle.CopyID(ref.ID)
	cp.Model = "fast"
	return cp
}

// pair creates batch b1 of total requests, claims r1 and starts its racing
// copy: r1 processing and the copy's request message.
func (b *bundle) pair(t testing.TB, total int64) (lifecycle.Processing, *lifecycle.Request) {
	t.Helper()
	b.createBatch(t, "b1", total)
	orig := b.claim(t, request("r1", "b1"), "w")
	return orig, b.race(t, orig.Ref)
}

// running is pair with the copy claimed too: both in flight.
func (b *bundle) running(t testing.TB, total int64) (orig, cp lifecycle.Processing) {
	t.Helper()
	orig, req := b.pair(t, total)
	return orig, b.claim(t, req, "w2")
}

// Escalate makes one copy per original: the original names it, the copy's
// record names the original, is pending, not counted, and the batch counts
// it in escalating only. A second call, a copy, an ended original and a
// batchless request make none.
func TestEscalateStartsOneUncountedCopyPerOriginal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	p, cp := b.pair(t, 3)
	require.Equal(t, "r1~esc", cp.ID)

	orig, err := b.store.Request(ctx, p.Ref)
	require.NoError(t, err)
	require.Equal(t, cp.ID, orig.EscalatedTo)
	rec, err := b.store.Request(ctx, cp.Ref())
	require.NoError(t, err)
	require.Equal(t, lifecycle.StatePending, rec.State)
	require.Equal(t, "r1", rec.EscalatedFrom)
	require.Equal(t, "fast", rec.Model)
	require.Equal(t, "c-r1", rec.CustomID)
	require.Equal(t, "0", b.field(t, cp.Ref(), "counted"))
	bt := b.batch(t, "b1")
	require.Equal(t, int64(1), bt.Escalating)
	require.Equal(t, lifecycle.Counts{Total: 3, Pending: 2, InProgress: 1}, bt.Counts)

	for name, ref := range map[string]lifecycle.Ref{
		"again": p.Ref, "a copy": cp.Ref(), "unseen": {ID: "r3", BatchID: "b1"},
	} {
		started, reason, err := b.store.Escalate(ctx, ref, "fast")
		require.NoError(t, err, name)
		require.False(t, started, name)
		require.NotEmpty(t, reason, name)
	}
	p2 := b.claim(t, request("r2", "b1"), "w")
	_, err = b.store.Complete(ctx, p2, state.Outcome{Status: 200})
	require.NoError(t, err)
	started, _, err := b.store.Escalate(ctx, p2.Ref, "fast")
	require.NoError(t, err)
	require.False(t, started, "an ended request")
	started, _, err = b.store.Escalate(ctx, lifecycle.Ref{ID: "solo"}, "fast")
	require.NoError(t, err)
	require.False(t, started, "batchless")
	require.Equal(t, int64(1), b.batch(t, "b1").Escalating)

	// claimed, the copy is in flight in the lease index but in no counter
	pc := b.claim(t, cp, "w2")
	require.Equal(t, lifecycle.Counts{Total: 3, Pending: 1, InProgress: 1, Completed: 1}, b.counts(t, "b1"))
	entries, err := b.store.ExpiredLeases(ctx, "b1", pc.Lease.Expires, 10)
	require.NoError(t, err)
	require.Len(t, entries, 2)
}

// The copy completing first supersedes its in-flight original (fenced
// out: its late result is dropped), moves the batch's counters and names
// the original; the copy's line, marked, is the original's result.
func TestACopyCompletingFirstSupersedesItsOriginal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	p, pc := b.running(t, 1)

	tr, err := b.store.Complete(ctx, pc, state.Outcome{Status: 200, RoutedModel: "fast", Result: []byte("copy")})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.StateCompleted, tr.State)
	require.Equal(t, "r1", tr.Superseded)
	require.NotNil(t, tr.Finalized, "the original was the batch's last request")
	require.Equal(t, lifecycle.BatchFinalizing, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 1, Superseded: 1}, tr.Finalized.Counts)
	require.Zero(t, tr.Finalized.Escalating)

	late, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("late")})
	require.NoError(t, err)
	require.False(t, late.Applied)
	require.Equal(t, lifecycle.StateSuperseded, late.State)
	rec, err := b.store.Request(ctx, p.Ref)
	require.NoError(t, err)
	require.Equal(t, pc.Ref.ID, rec.SupersededBy)

	require.Empty(t, b.publish(t, p.Ref), "the superseded original's mark counts nothing")
	final := b.publish(t, pc.Ref)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCompleted, final[0].Status, "superseded by a completed copy: the batch completed")
	require.Equal(t, int64(1), final[0].ResultsPublished)
}

// The original completing first supersedes its copy (pending or in
// flight): escalating drops, the copy's late result is dropped, and the
// batch never counted the copy.
func TestAnOriginalCompletingFirstSupersedesItsCopy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	p, pc := b.running(t, 1)

	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("orig")})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, pc.Ref.ID, tr.Superseded)
	require.Zero(t, b.batch(t, "b1").Escalating)
	late, err := b.store.Complete(ctx, pc, state.Outcome{Status: 200, Result: []byte("late")})
	require.NoError(t, err)
	require.False(t, late.Applied)
	require.Equal(t, lifecycle.StateSuperseded, late.State)
	final := b.publish(t, pc.Ref, p.Ref)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.Counts{Total: 1, Completed: 1}, final[0].Counts)
}

// A failure never wins: a failed copy leaves its original running, and the
// original's result stands; a copy completing after its original was
// canceled loses.
func TestAFailedCopyLeavesTheOriginalAndACanceledOriginalBeatsItsCopy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	p, pc := b.running(t, 2)
	tr, err := b.store.Fail(ctx, pc.Held(), state.Outcome{Failure: failure(lifecycle.CodeRetriableStatus, 503)})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Empty(t, tr.Superseded)
	require.Equal(t, lifecycle.Counts{Total: 2, Pending: 1, InProgress: 1}, b.counts(t, "b1"))
	require.Zero(t, b.batch(t, "b1").Escalating)
	tr, err = b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Empty(t, tr.Superseded, "the copy had failed")

	p2 := b.claim(t, request("r2", "b1"), "w")
	pc2 := b.claim(t, b.race(t, p2.Ref), "w2")
	_, err = b.store.CancelRequest(ctx, p2.Ref)
	require.NoError(t, err)
	tr, err = b.store.Complete(ctx, pc2, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateSuperseded, tr.State, "the copy lost to the cancel")
	require.Empty(t, tr.Superseded)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Canceled: 1}, b.counts(t, "b1"))
	require.Zero(t, b.batch(t, "b1").Escalating)
}

// Past its batch's deadline a copy cannot overturn its failed original:
// the batch no longer waits for copies then and may be final, so its
// counters and its result lines stay as they are; the copy ends
// superseded and publishes nothing.
func TestACopyCompletingPastTheDeadlineLosesToItsFailedOriginal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	p, pc := b.running(t, 1)
	tr, err := b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeRetriableStatus, 503)})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Equal(t, lifecycle.Counts{Total: 1, Failed: 1}, b.counts(t, "b1"))

	b.clock.Advance(24*time.Hour + time.Second)
	tr, err = b.store.Complete(ctx, pc, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateSuperseded, tr.State, "the copy lost: the deadline passed")
	require.Empty(t, tr.Superseded)
	rec, err := b.store.Request(ctx, p.Ref)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateFailed, rec.State, "the original's failure stands")
	require.Equal(t, lifecycle.Counts{Total: 1, Failed: 1}, b.counts(t, "b1"))
	require.Zero(t, b.batch(t, "b1").Escalating)
}
