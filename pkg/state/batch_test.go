package state_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

func TestCreateBatchIdempotentAndConflict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	nb := state.NewBatch{
		ID: "b1", CompletionWindow: "24h", Endpoint: "/v1/chat/completions",
		Metadata:  map[string]string{"team": "a", "job": "x"},
		CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour), Total: 3,
	}
	first, created, err := b.store.CreateBatch(ctx, nb)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, lifecycle.BatchValidating, first.Status)
	require.True(t, first.Sealed, "a total at creation seals the batch")
	require.Equal(t, lifecycle.Counts{Total: 3, Pending: 3}, first.Counts)
	require.Equal(t, nb.Metadata, first.Metadata)
	require.Equal(t, base, first.CreatedAt)

	b.claim(t, request("r1", "b1"), "w1")
	again, created, err := b.store.CreateBatch(ctx, nb)
	require.NoError(t, err, "same contents: idempotent")
	require.False(t, created)
	require.Equal(t, lifecycle.Counts{Total: 3, Pending: 2, InProgress: 1}, again.Counts, "and never resets counters")

	nb.Total = 4
	_, _, err = b.store.CreateBatch(ctx, nb)
	require.ErrorIs(t, err, state.ErrBatchConflict)
	var conflict *lifecycle.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, "total", conflict.Field)

	_, _, err = b.store.CreateBatch(ctx, state.NewBatch{ID: "b2", CreatedAt: base, ExpiresAt: base.Add(time.Hour), Total: -1})
	require.ErrorIs(t, err, state.ErrInvalidBatch, "a negative total (0 is an open batch)")
	_, _, err = b.store.CreateBatch(ctx, state.NewBatch{ID: "b2", CreatedAt: base, Total: 1})
	require.ErrorIs(t, err, state.ErrInvalidBatch, "no expires_at")
}

func TestBatchStatusProgression(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 20)
	status := func() lifecycle.BatchStatus {
		bt, err := b.store.Batch(ctx, "b1")
		require.NoError(t, err)
		return bt.Status
	}
	require.Equal(t, lifecycle.BatchValidating, status())
	var done []lifecycle.Ref
	for i := range 20 {
		p := b.claim(t, request(string(rune('a'+i)), "b1"), "w")
		switch i {
		case 0:
			require.Equal(t, lifecycle.BatchInProgress, status())
		case 19:
			require.Equal(t, lifecycle.BatchInProgress, status(), "19 of 20 ended: a request is still running")
		}
		tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("line")})
		require.NoError(t, err)
		require.Equal(t, i == 19, tr.Finalized != nil)
		done = append(done, p.Ref)
	}
	bt := b.batch(t, "b1")
	require.Equal(t, lifecycle.BatchFinalizing, bt.Status, "every request ended; no result is out yet")
	require.Equal(t, base, bt.FinalizingAt)
	require.True(t, bt.FinalizedAt.IsZero())

	b.clock.Advance(time.Minute)
	require.Empty(t, b.publish(t, done[:19]...), "one result is still out")
	require.Equal(t, lifecycle.BatchFinalizing, status())
	final := b.publish(t, done[19])
	require.Len(t, final, 1, "the last result turns the batch final")
	bt = b.batch(t, "b1")
	require.Equal(t, final[0], bt)
	require.Equal(t, lifecycle.BatchCompleted, bt.Status)
	require.Equal(t, b.clock.Now(), bt.FinalizedAt)
	require.Equal(t, b.clock.Now(), bt.CompletedAt)
	require.Equal(t, base, bt.FinalizingAt)
	require.Equal(t, int64(20), bt.ResultsPublished)
	require.Zero(t, bt.ResultsMissing)
}

func TestCancelBatchAccounting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 10)
	p1 := b.claim(t, request("r1", "b1"), "w")
	p2 := b.claim(t, request("r2", "b1"), "w")
	p3 := b.claim(t, request("r3", "b1"), "w")
	_, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200})
	require.NoError(t, err)
	// r4 was claimed and retried: pending with a record.
	p4 := b.claim(t, request("r4", "b1"), "w")
	_, err = b.store.Retry(ctx, p4, failure(lifecycle.CodeRetriableStatus, 503), base)
	require.NoError(t, err)

	tr, err := b.store.CancelBatch(ctx, "b1")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Nil(t, tr.Finalized, "two requests are still in flight")
	bt, err := b.store.Batch(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, lifecycle.BatchCancelling, bt.Status)
	require.Equal(t, base, bt.CancellingAt)
	require.Equal(t, lifecycle.Counts{Total: 10, InProgress: 2, Completed: 1, Canceled: 7}, bt.Counts)

	again, err := b.store.CancelBatch(ctx, "b1")
	require.NoError(t, err)
	require.False(t, again.Applied)

	// Queued requests (with or without a record) end canceled on claim, no counter change.
	for _, id := range []string{"r4", "r5"} {
		c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request(id, "b1"), Owner: "w", Start: true})
		require.NoError(t, err)
		require.Equal(t, lifecycle.StateCanceled, c.Ended.State)
		require.True(t, c.Ended.JustEnded)
		require.Equal(t, lifecycle.CodeBatchCanceled, c.Ended.Failure.Code)
	}
	require.Equal(t, lifecycle.Counts{Total: 10, InProgress: 2, Completed: 1, Canceled: 7}, b.counts(t, "b1"))
	_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "r6", BatchID: "b1"})
	require.NoError(t, err)
	require.Equal(t, lifecycle.Counts{Total: 10, InProgress: 2, Completed: 1, Canceled: 7}, b.counts(t, "b1"))

	// An in-flight retry of a cancelled batch ends canceled.
	tr, err = b.store.Retry(ctx, p2, failure(lifecycle.CodeRetriableStatus, 500), base)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCanceled, tr.State)
	require.Nil(t, tr.Finalized)
	require.Equal(t, lifecycle.Counts{Total: 10, InProgress: 1, Completed: 1, Canceled: 8}, b.counts(t, "b1"))

	// The last holder's result ends the last request: the batch stays
	// cancelling until the results are out.
	tr, err = b.store.Complete(ctx, p3, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchCancelling, tr.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 10, Completed: 2, Canceled: 8}, tr.Finalized.Counts)
	require.Equal(t, base, tr.Finalized.FinalizingAt)

	// Six requests have records and results; the four never seen have
	// none until their messages are read. The sweep forces the end.
	require.Empty(t, b.publish(t, refs("b1", "r1", "r2", "r3", "r4", "r5", "r6")...))
	fin, err := b.store.FinishBatch(ctx, "b1")
	require.NoError(t, err)
	require.NotNil(t, fin)
	require.Equal(t, lifecycle.BatchCancelled, fin.Status)
	require.Equal(t, int64(6), fin.ResultsPublished)
	require.Equal(t, int64(4), fin.ResultsMissing)

	_, err = b.store.CancelBatch(ctx, "nope")
	require.ErrorIs(t, err, state.ErrNotFound)
}

func TestCancelBatchWithNothingInFlightFinalizes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createBatch(t, "b1", 5)
	tr, err := b.store.CancelBatch(ctxT(t), "b1")
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchCancelling, tr.Finalized.Status, "every request ended; their results are not out")
	require.Equal(t, lifecycle.Counts{Total: 5, Canceled: 5}, tr.Finalized.Counts)

	// The queued messages are read and each gets its canceled result.
	ids := []string{"r1", "r2", "r3", "r4", "r5"}
	for _, id := range ids {
		e := b.ended(t, request(id, "b1"), "w")
		require.Equal(t, lifecycle.StateCanceled, e.State)
		require.True(t, e.JustEnded)
		require.Nil(t, e.Finalized, "the cancel ended the batch's last request already")
	}
	require.Equal(t, lifecycle.Counts{Total: 5, Canceled: 5}, b.counts(t, "b1"))
	final := b.publish(t, refs("b1", ids...)...)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCancelled, final[0].Status)
	require.Equal(t, base, final[0].CancelledAt)
}

func TestExactlyOneFinalizer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	const n = 64
	for round := range 5 {
		id := "b" + string(rune('A'+round))
		b.createBatch(t, id, n)
		held := make([]lifecycle.Processing, n)
		for i := range n {
			held[i] = b.claim(t, request(string(rune('a'+i%26))+string(rune('0'+i/26)), id), "w")
		}
		var finalizers atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				var tr state.Transition
				var err error
				if i%3 == 0 {
					tr, err = b.store.Fail(ctx, held[i].Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400)})
				} else {
					tr, err = b.store.Complete(ctx, held[i], state.Outcome{Status: 200})
				}
				if err == nil && tr.Finalized != nil {
					finalizers.Add(1)
				}
				if err != nil {
					t.Errorf("transition %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, int32(1), finalizers.Load(), "round %d", round)
		bt := b.batch(t, id)
		require.Equal(t, lifecycle.BatchFinalizing, bt.Status)
		require.Equal(t, int64(n), bt.Counts.Completed+bt.Counts.Failed)

		// The results go out concurrently: exactly one mark turns it final.
		var finals atomic.Int32
		start = make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				fin, err := b.store.MarkPublished(ctx, []lifecycle.Ref{held[i].Ref})
				if err != nil {
					t.Errorf("mark published %d: %v", i, err)
				}
				finals.Add(int32(len(fin)))
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, int32(1), finals.Load(), "round %d", round)
		require.Equal(t, lifecycle.BatchCompleted, b.batch(t, id).Status)
	}
}

func TestRetentionTTL(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *state.Config) { c.Retention = time.Hour })
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	p := b.claim(t, request("r1", "b1"), "w")
	b.claim(t, request("r2", "b1"), "w")
	pttl := func(key string) time.Duration {
		d, err := b.redis.Client.PTTL(ctx, key).Result()
		require.NoError(t, err)
		return d
	}
	recKey := b.cfg.Prefix + ":{b1}:req:r1"
	batchKey := b.cfg.Prefix + ":{b1}:batch"
	live := 25 * time.Hour // expires_at (24h) + retention
	require.Greater(t, pttl(recKey), live-time.Minute, "in-flight records expire with their batch")
	require.LessOrEqual(t, pttl(recKey), live)
	require.Greater(t, pttl(batchKey), live-time.Minute, "unfinished batches expire at expires_at + retention")
	require.LessOrEqual(t, pttl(batchKey), live)

	_, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	d := pttl(recKey)
	require.Greater(t, d, 59*time.Minute)
	require.LessOrEqual(t, d, time.Hour)
	require.Greater(t, pttl(batchKey), live-time.Minute)

	_, err = b.store.ForceFail(ctx, request("r2", "b1"), state.Outcome{Failure: failure(lifecycle.CodeTimeout, 0)})
	require.NoError(t, err)
	require.Equal(t, lifecycle.BatchFinalizing, b.batch(t, "b1").Status)
	require.Greater(t, pttl(batchKey), live-time.Minute, "a finalizing batch keeps its keys until its results are out")

	require.Len(t, b.publish(t, refs("b1", "r1", "r2")...), 1)
	d = pttl(batchKey)
	require.Greater(t, d, 59*time.Minute, "a final batch expires after retention")
	require.LessOrEqual(t, d, time.Hour)
}

func TestCancelledBatchClaimOfDeadLeaseThenLateResultWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")
	_, err := b.store.CancelBatch(ctx, "b1")
	require.NoError(t, err)
	b.clock.Advance(time.Minute) // w1's lease expires; the message is redelivered

	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w2", Start: true})
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCanceled, c.Ended.State)
	require.True(t, c.Ended.JustEnded)
	require.NotNil(t, c.Ended.Finalized)
	require.Equal(t, lifecycle.BatchCancelling, c.Ended.Finalized.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Canceled: 2}, c.Ended.Finalized.Counts)

	// w1's call finished anyway: its real result replaces the soft cancel.
	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Nil(t, tr.Finalized, "the batch's last request ended once already")
	bt := b.batch(t, "b1")
	require.Equal(t, lifecycle.BatchCancelling, bt.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Canceled: 1}, bt.Counts)

	// r2's queued message gets its canceled result; with both out the
	// batch is cancelled.
	require.Equal(t, lifecycle.StateCanceled, b.ended(t, request("r2", "b1"), "w2").State)
	final := b.publish(t, refs("b1", "r1", "r2")...)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCancelled, final[0].Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Canceled: 1}, final[0].Counts)
}

func TestCreateBatchNilAndEmptyMetadataAreEquivalent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	for _, order := range [][2]map[string]string{{nil, {}}, {{}, nil}} {
		id := fmt.Sprintf("b-%t", order[0] == nil)
		nb := state.NewBatch{
			ID: id, CompletionWindow: "24h", Endpoint: "/v1/chat/completions",
			Metadata: order[0], CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour), Total: 2,
		}
		_, _, err := b.store.CreateBatch(ctx, nb)
		require.NoError(t, err)
		nb.Metadata = order[1]
		again, _, err := b.store.CreateBatch(ctx, nb)
		require.NoError(t, err, "nil and empty metadata are the same contents")
		require.Empty(t, again.Metadata)
		require.Equal(t, lifecycle.Counts{Total: 2, Pending: 2}, again.Counts)
	}
}

func TestIDsWithBracesOrSpacesAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	for _, id := range []string{"a{b", "a}b", "a b", "a\tb", ""} {
		_, _, err := b.store.CreateBatch(ctx, state.NewBatch{
			ID: id, CreatedAt: base, ExpiresAt: base.Add(time.Hour), Total: 1,
		})
		require.ErrorIs(t, err, state.ErrInvalidBatch, "%q", id)
		require.ErrorIs(t, err, state.ErrInvalidID, "%q", id)
		_, err = b.store.CancelBatch(ctx, id)
		require.ErrorIs(t, err, state.ErrInvalidID, "%q", id)
		_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: id, BatchID: "b1"})
		require.ErrorIs(t, err, state.ErrInvalidID, "%q", id)
		if id != "" {
			require.Contains(t, err.Error(), fmt.Sprintf("%q", id), "the error names the id")
			_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "r1", BatchID: id})
			require.ErrorIs(t, err, state.ErrInvalidID, "%q", id)
		}
	}
	keys, err := b.redis.Keys(ctx)
	require.NoError(t, err)
	require.Empty(t, keys, "nothing was written")
}
