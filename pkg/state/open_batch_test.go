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

// CreateBatch's identity is its contents (completion window, endpoint,
// metadata, total), not its times: a retry returns the stored batch with
// its first times, a difference in one field is a conflict naming it.
func TestCreateBatchIdentityIsItsContentsNotItsTimes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	nb := state.NewBatch{
		ID: "b1", CompletionWindow: "24h", Endpoint: "/v1/chat/completions",
		Metadata: map[string]string{"k": "v"}, CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour), Total: 2,
	}
	first, created, err := b.store.CreateBatch(ctx, nb)
	require.NoError(t, err)
	require.True(t, created)

	later := nb
	later.CreatedAt, later.ExpiresAt = base.Add(time.Hour), base.Add(25*time.Hour)
	again, created, err := b.store.CreateBatch(ctx, later)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first, again, "the first times stay")

	for field, mod := range map[string]func(*state.NewBatch){
		"completion_window": func(n *state.NewBatch) { n.CompletionWindow = "48h" },
		"endpoint":          func(n *state.NewBatch) { n.Endpoint = "/v1/embeddings" },
		"metadata":          func(n *state.NewBatch) { n.Metadata = map[string]string{"k": "w"} },
		"total":             func(n *state.NewBatch) { n.Total = 0 },
	} {
		other := nb
		mod(&other)
		_, created, err := b.store.CreateBatch(ctx, other)
		var conflict *lifecycle.ConflictError
		require.ErrorAs(t, err, &conflict, field)
		require.ErrorIs(t, err, lifecycle.ErrBatchConflict)
		require.Equal(t, field, conflict.Field)
		require.Equal(t, "b1", conflict.BatchID)
		require.False(t, created)
	}
	require.Equal(t, first, b.batch(t, "b1"), "no conflicting create wrote anything")
}

// An open batch starts validating with nothing counted, and a create
// retried after the seal is still the same batch (the total it was
// created with is its identity).
func TestOpenBatchIsCreatedEmptyAndARetriedCreateSurvivesTheSeal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	bt := b.createOpen(t, "ob")
	require.False(t, bt.Sealed)
	require.Equal(t, lifecycle.BatchValidating, bt.Status)
	require.Equal(t, lifecycle.Counts{}, bt.Counts)

	_, _, err := b.store.SealBatch(ctx, "ob", 3)
	require.NoError(t, err)
	again, created, err := b.store.CreateBatch(ctx, state.NewBatch{
		ID: "ob", CompletionWindow: "24h", Endpoint: "/v1/chat/completions",
		CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour),
	})
	require.NoError(t, err)
	require.False(t, created)
	require.True(t, again.Sealed)
	require.Equal(t, lifecycle.Counts{Total: 3, Pending: 3}, again.Counts)
}

// An open batch counts each request when it first sees it, whatever move
// creates its record (claim, force fail, cancel, supersede), and never
// twice; it does not finish before it is sealed, even when every request
// it saw has ended.
func TestOpenBatchCountsEachRequestWhenFirstSeenAndWaitsForItsSeal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createOpen(t, "ob")

	b.claim(t, request("r1", "ob"), "w")
	bt := b.batch(t, "ob")
	require.Equal(t, lifecycle.Counts{Total: 1, InProgress: 1}, bt.Counts)
	require.Equal(t, lifecycle.BatchInProgress, bt.Status)
	require.Equal(t, base, bt.InProgressAt)
	require.Equal(t, "1", b.batchField(t, "ob", "seen"))

	b.clock.Advance(time.Minute) // r1's lease expires: a reclaim is no new request
	p := b.claim(t, request("r1", "ob"), "w2")
	require.Equal(t, lifecycle.Counts{Total: 1, InProgress: 1}, b.counts(t, "ob"))

	_, err := b.store.ForceFail(ctx, request("r2", "ob"), state.Outcome{Failure: failure(lifecycle.CodeMalformedMessage, 0)})
	require.NoError(t, err)
	_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "r3", BatchID: "ob"})
	require.NoError(t, err)
	_, err = b.store.ForceFail(ctx, request("r4", "ob"), state.Outcome{Failure: failure(lifecycle.CodeMaxDeliveries, 0)})
	require.NoError(t, err)
	require.Equal(t, lifecycle.Counts{Total: 4, InProgress: 1, Failed: 2, Canceled: 1}, b.counts(t, "ob"))
	require.Equal(t, "4", b.batchField(t, "ob", "seen"))
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		require.Equal(t, "1", b.field(t, lifecycle.Ref{ID: id, BatchID: "ob"}, "counted"), id)
	}

	tr, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("line")})
	require.NoError(t, err)
	require.Nil(t, tr.Finalized, "every request seen has ended, but the batch is open")
	require.Empty(t, b.publish(t, refs("ob", "r1", "r2", "r3", "r4")...))
	bt = b.batch(t, "ob")
	require.Equal(t, lifecycle.BatchInProgress, bt.Status)
	require.True(t, bt.FinalizingAt.IsZero())

	// The seal at what it saw ends it; every result is out already.
	b.clock.Advance(time.Minute)
	bt, finalized, err := b.store.SealBatch(ctx, "ob", 4)
	require.NoError(t, err)
	require.True(t, finalized, "this seal turned the batch final")
	_, finalized, err = b.store.SealBatch(ctx, "ob", 4)
	require.NoError(t, err)
	require.False(t, finalized, "a repeated seal of a final batch has no final event to publish")
	require.True(t, bt.Sealed)
	require.Equal(t, lifecycle.BatchCompleted, bt.Status)
	require.Equal(t, b.clock.Now(), bt.FinalizingAt)
	require.Equal(t, b.clock.Now(), bt.CompletedAt)
	require.Equal(t, "pending", b.batchField(t, "ob", "evt_final"), "the final event is due")
}

// SealBatch fixes an open batch's total: the requests not seen yet are
// pending; the same total again is a no-op, another one a conflict naming
// total, fewer than seen invalid, an unknown batch not found.
func TestSealBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createOpen(t, "ob")
	b.claim(t, request("r1", "ob"), "w")
	b.claim(t, request("r2", "ob"), "w")

	_, _, err := b.store.SealBatch(ctx, "ob", 1)
	require.ErrorIs(t, err, lifecycle.ErrInvalidBatch, "fewer than the two seen")
	require.False(t, b.batch(t, "ob").Sealed)

	bt, _, err := b.store.SealBatch(ctx, "ob", 5)
	require.NoError(t, err)
	require.True(t, bt.Sealed)
	require.Equal(t, lifecycle.Counts{Total: 5, Pending: 3, InProgress: 2}, bt.Counts)

	again, _, err := b.store.SealBatch(ctx, "ob", 5)
	require.NoError(t, err)
	require.Equal(t, bt, again, "the same total again changes nothing")

	_, _, err = b.store.SealBatch(ctx, "ob", 6)
	var conflict *lifecycle.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.ErrorIs(t, err, lifecycle.ErrBatchConflict)
	require.Equal(t, "total", conflict.Field)
	require.Equal(t, "5", conflict.Stored)
	require.Equal(t, "6", conflict.Given)

	// A batch sealed at creation takes a seal of its own total only.
	b.createBatch(t, "sb", 2)
	_, _, err = b.store.SealBatch(ctx, "sb", 2)
	require.NoError(t, err)
	_, _, err = b.store.SealBatch(ctx, "sb", 3)
	require.ErrorIs(t, err, lifecycle.ErrBatchConflict)

	_, _, err = b.store.SealBatch(ctx, "nope", 1)
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	_, _, err = b.store.SealBatch(ctx, "ob", 0)
	require.ErrorIs(t, err, lifecycle.ErrInvalidBatch)
	_, _, err = b.store.SealBatch(ctx, "a{b", 1)
	require.ErrorIs(t, err, state.ErrInvalidID)
	require.Equal(t, lifecycle.Counts{Total: 5, Pending: 3, InProgress: 2}, b.counts(t, "ob"))
}

// Once sealed, the batch counts requests up to its total; the next one is
// not part of it: failed malformed_message, no counter moves, counted=0.
func TestSealedOpenBatchRefusesRequestsBeyondItsTotal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createOpen(t, "ob")
	b.claim(t, request("r1", "ob"), "w")
	_, _, err := b.store.SealBatch(ctx, "ob", 2)
	require.NoError(t, err)
	b.claim(t, request("r2", "ob"), "w")
	want := lifecycle.Counts{Total: 2, InProgress: 2}
	require.Equal(t, want, b.counts(t, "ob"))

	e := b.ended(t, request("r3", "ob"), "w")
	require.Equal(t, lifecycle.StateFailed, e.State)
	require.True(t, e.JustEnded)
	require.Equal(t, lifecycle.CodeMalformedMessage, e.Failure.Code)
	require.Equal(t, want, b.counts(t, "ob"))
	require.Equal(t, "0", b.field(t, lifecycle.Ref{ID: "r3", BatchID: "ob"}, "counted"))
	require.Empty(t, b.publish(t, lifecycle.Ref{ID: "r3", BatchID: "ob"}))
	require.Zero(t, b.batch(t, "ob").ResultsPublished, "a stray's result is not the batch's")

	_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "r4", BatchID: "ob"})
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	_, err = b.store.Supersede(ctx, lifecycle.Ref{ID: "r4", BatchID: "ob"}, "copy")
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	require.Equal(t, want, b.counts(t, "ob"))
}

// Many workers claiming the new requests of an open batch at once (each
// request several times) count each request exactly once, and exactly one
// claimer holds each.
func TestOpenBatchCountsRacingClaimsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createOpen(t, "ob")
	const (
		ids    = 200
		copies = 4
	)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		held  = map[string]int{}
		start = make(chan struct{})
	)
	for i := range ids * copies {
		wg.Go(func() {
			<-start
			req := request(fmt.Sprintf("r%03d", i%ids), "ob")
			c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: fmt.Sprintf("w%d", i), Start: true})
			if errors.Is(err, state.ErrLeaseHeld) {
				return
			}
			if err != nil || c.Held == nil {
				t.Errorf("claim %s: %v %+v", req.ID, err, c.Ended)
				return
			}
			mu.Lock()
			held[req.ID]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	require.Len(t, held, ids)
	for id, n := range held {
		require.Equal(t, 1, n, id)
	}
	require.Equal(t, lifecycle.Counts{Total: ids, InProgress: ids}, b.counts(t, "ob"))
	require.Equal(t, fmt.Sprint(ids), b.batchField(t, "ob", "seen"))
}

// A seal racing with claims of new requests: either the seal comes after
// more requests than it names (refused, the batch stays open and counts
// them all) or it fixes the total and exactly the requests it leaves room
// for are counted, the rest are strays.
func TestSealRacingWithNewRequestsCountsExactlyTheTotal(t *testing.T) {
	t.Parallel()
	root := setup(t)
	for round := range 8 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			b := root.fork(t)
			ctx := ctxT(t)
			b.createOpen(t, "ob")
			for i := range 50 {
				b.claim(t, request(fmt.Sprintf("old%02d", i), "ob"), "w")
			}
			const total, racing = 80, 60
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				sealErr error
				strays  = make([]bool, racing)
			)
			wg.Go(func() {
				<-start
				_, _, sealErr = b.store.SealBatch(ctx, "ob", total)
			})
			for i := range racing {
				wg.Go(func() {
					<-start
					c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request(fmt.Sprintf("new%02d", i), "ob"), Owner: "w", Start: true})
					if err != nil {
						t.Errorf("claim: %v", err)
						return
					}
					strays[i] = c.Ended != nil && c.Ended.Failure != nil && c.Ended.Failure.Code == lifecycle.CodeMalformedMessage
				})
			}
			close(start)
			wg.Wait()
			n := 0
			for _, s := range strays {
				if s {
					n++
				}
			}
			bt := b.batch(t, "ob")
			if sealErr != nil {
				require.ErrorIs(t, sealErr, lifecycle.ErrInvalidBatch)
				require.False(t, bt.Sealed)
				require.Zero(t, n)
				require.Equal(t, lifecycle.Counts{Total: 50 + racing, InProgress: 50 + racing}, bt.Counts)
				return
			}
			require.True(t, bt.Sealed)
			require.Equal(t, 50+racing-total, n, "the requests beyond the total are strays")
			require.Equal(t, lifecycle.Counts{Total: total, InProgress: total}, bt.Counts)
			require.Equal(t, fmt.Sprint(total), b.batchField(t, "ob", "seen"))
		})
	}
}

// Cancelling an open batch seals it at what it has seen: a later request
// is not part of it, and the batch ends when the requests it saw have.
func TestCancelOpenBatchSealsItAtWhatItSaw(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createOpen(t, "ob")
	p1 := b.claim(t, request("r1", "ob"), "w")
	p2 := b.claim(t, request("r2", "ob"), "w")
	_, err := b.store.Complete(ctx, p1, state.Outcome{Status: 200})
	require.NoError(t, err)

	tr, err := b.store.CancelBatch(ctx, "ob")
	require.NoError(t, err)
	require.True(t, tr.Applied)
	require.Nil(t, tr.Finalized, "r2 is in flight")
	bt := b.batch(t, "ob")
	require.True(t, bt.Sealed)
	require.Equal(t, lifecycle.BatchCancelling, bt.Status)
	require.Equal(t, lifecycle.Counts{Total: 2, InProgress: 1, Completed: 1}, bt.Counts)
	_, _, err = b.store.SealBatch(ctx, "ob", 3)
	require.ErrorIs(t, err, lifecycle.ErrBatchConflict)

	e := b.ended(t, request("r3", "ob"), "w")
	require.Equal(t, lifecycle.CodeMalformedMessage, e.Failure.Code)

	tr, err = b.store.Cancel(ctx, p2.Held(), state.Outcome{})
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchCancelling, tr.Finalized.Status)
	final := b.publish(t, refs("ob", "r1", "r2")...)
	require.Len(t, final, 1)
	require.Equal(t, lifecycle.BatchCancelled, final[0].Status)
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Canceled: 1}, final[0].Counts)
}

// An open batch that saw nothing ends at once when cancelled or expired:
// sealed at zero, final with no result to wait for.
func TestEmptyOpenBatchEndsAtOnceWhenCancelledOrExpired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createOpen(t, "c")
	b.createOpen(t, "e")

	tr, err := b.store.CancelBatch(ctx, "c")
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchCancelled, tr.Finalized.Status)
	require.True(t, tr.Finalized.Sealed)
	require.Zero(t, tr.Finalized.Counts.Total)

	b.clock.Advance(24 * time.Hour)
	tr, err = b.store.ExpireBatch(ctx, "e")
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	require.Equal(t, lifecycle.BatchExpired, tr.Finalized.Status)
	require.Equal(t, b.clock.Now(), tr.Finalized.ExpiredAt)
}
