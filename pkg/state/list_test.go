package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// ids lists a page's batch ids.
func ids(p lifecycle.BatchPage) []string {
	out := make([]string, len(p.Batches))
	for i, bt := range p.Batches {
		out[i] = bt.ID
	}
	return out
}

// ListBatches pages newest first (by created_at) with After and Limit,
// filters by status and metadata, says when more may follow, refuses an
// After it does not know, and drops from its index the batches gone by
// retention.
func TestListBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	for i := range 5 { // b0 oldest … b4 newest
		team := []string{"a", "b"}[i%2]
		_, _, err := b.store.CreateBatch(ctx, state.NewBatch{
			ID: fmt.Sprintf("b%d", i), CompletionWindow: "24h", Metadata: map[string]string{"team": team, "n": fmt.Sprint(i)},
			CreatedAt: base.Add(time.Duration(i) * time.Minute), ExpiresAt: base.Add(24 * time.Hour), Total: 1,
		})
		require.NoError(t, err)
	}
	b.claim(t, request("r1", "b3"), "w") // b3 in_progress, the others validating
	list := func(q lifecycle.BatchQuery) lifecycle.BatchPage {
		t.Helper()
		p, err := b.store.ListBatches(ctx, q)
		require.NoError(t, err)
		return p
	}

	all := list(lifecycle.BatchQuery{})
	require.Equal(t, []string{"b4", "b3", "b2", "b1", "b0"}, ids(all))
	require.False(t, all.HasMore)
	require.Equal(t, b.batch(t, "b3"), all.Batches[1])

	p := list(lifecycle.BatchQuery{Limit: 2})
	require.Equal(t, []string{"b4", "b3"}, ids(p))
	require.True(t, p.HasMore)
	p = list(lifecycle.BatchQuery{Limit: 2, After: "b3"})
	require.Equal(t, []string{"b2", "b1"}, ids(p))
	require.True(t, p.HasMore)
	p = list(lifecycle.BatchQuery{Limit: 2, After: "b1"})
	require.Equal(t, []string{"b0"}, ids(p))
	require.False(t, p.HasMore)
	p = list(lifecycle.BatchQuery{After: "b0"})
	require.Empty(t, p.Batches)
	require.False(t, p.HasMore)

	p = list(lifecycle.BatchQuery{Status: lifecycle.BatchInProgress})
	require.Equal(t, []string{"b3"}, ids(p))
	p = list(lifecycle.BatchQuery{Metadata: map[string]string{"team": "a"}})
	require.Equal(t, []string{"b4", "b2", "b0"}, ids(p))
	p = list(lifecycle.BatchQuery{Metadata: map[string]string{"team": "a", "n": "2"}})
	require.Equal(t, []string{"b2"}, ids(p))
	p = list(lifecycle.BatchQuery{Metadata: map[string]string{"team": "c"}})
	require.Empty(t, p.Batches)
	p = list(lifecycle.BatchQuery{Metadata: map[string]string{"team": "a"}, Limit: 1, After: "b4"})
	require.Equal(t, []string{"b2"}, ids(p))
	require.True(t, p.HasMore)

	_, err := b.store.ListBatches(ctx, lifecycle.BatchQuery{After: "nope"})
	require.ErrorIs(t, err, lifecycle.ErrNotFound)

	// b2's hash is gone by retention: the list skips it and drops it.
	index := b.cfg.Prefix + ":batches:created"
	require.NoError(t, b.redis.Client.Del(ctx, b.cfg.Prefix+":{b2}:batch").Err())
	p = list(lifecycle.BatchQuery{Limit: 3})
	require.Equal(t, []string{"b4", "b3", "b1"}, ids(p))
	require.True(t, p.HasMore)
	n, err := b.redis.Client.ZCard(ctx, index).Result()
	require.NoError(t, err)
	require.Equal(t, int64(4), n, "b2 left the index")
	_, err = b.store.ListBatches(ctx, lifecycle.BatchQuery{After: "b2"})
	require.ErrorIs(t, err, lifecycle.ErrNotFound)
	p = list(lifecycle.BatchQuery{Limit: 1, After: "b3"})
	require.Equal(t, []string{"b1"}, ids(p))
}

// Limit defaults to DefaultBatchPage and is capped at MaxBatchPage; a
// filter scanning past its page says HasMore.
func TestListBatchesPageSizes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	const n = lifecycle.MaxBatchPage + 5
	for i := range n {
		_, _, err := b.store.CreateBatch(ctx, state.NewBatch{
			ID: fmt.Sprintf("b%03d", i), CompletionWindow: "24h",
			CreatedAt: base.Add(time.Duration(i) * time.Second), ExpiresAt: base.Add(24 * time.Hour), Total: 1,
		})
		require.NoError(t, err)
	}
	p, err := b.store.ListBatches(ctx, lifecycle.BatchQuery{})
	require.NoError(t, err)
	require.Len(t, p.Batches, lifecycle.DefaultBatchPage)
	require.True(t, p.HasMore)
	require.Equal(t, fmt.Sprintf("b%03d", n-1), p.Batches[0].ID)
	p, err = b.store.ListBatches(ctx, lifecycle.BatchQuery{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, p.Batches, lifecycle.MaxBatchPage)
	require.True(t, p.HasMore)
	p, err = b.store.ListBatches(ctx, lifecycle.BatchQuery{Limit: 1000, After: p.Batches[len(p.Batches)-1].ID})
	require.NoError(t, err)
	require.Len(t, p.Batches, 5)
	require.False(t, p.HasMore)
}
