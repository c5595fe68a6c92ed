package state_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// A terminal record read back is the same ended view a later claim of the
// request reports, before and after its result is marked published.
func TestRecordEndedMatchesWhatAClaimReports(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	req := request("r1", "b1")
	p := b.claim(t, req, "w1")
	f := failure(lifecycle.CodeRetriableStatus, 503)
	_, err := b.store.Fail(ctx, p.Held(), state.Outcome{Failure: f, Status: 503, Result: []byte(`{"id":"r1"}`)})
	require.NoError(t, err)

	for _, published := range []bool{false, true} {
		if published {
			require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})))
		}
		c, err := b.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "w2", Start: true})
		require.NoError(t, err)
		require.NotNil(t, c.Ended)
		rec, err := b.store.Request(ctx, req.Ref())
		require.NoError(t, err)
		require.Equal(t, c.Ended, rec.Ended(), "published=%v", published)
	}
}

// The view copies the record's terminal fields and sets nothing a read
// cannot know.
func TestRecordEndedCopiesTheTerminalFields(t *testing.T) {
	t.Parallel()
	f := &lifecycle.Failure{Code: lifecycle.CodeBatchCanceled, Message: "the batch was cancelled"}
	rec := state.Record{
		State: lifecycle.StateCanceled, Failure: f, Status: 499, Attempt: 2,
		Published: true, Outbox: []byte(`{}`), Owner: "w1",
	}
	require.Equal(t, &state.Ended{
		State: lifecycle.StateCanceled, Failure: f, Status: 499, Attempts: 2, Published: true, Outbox: []byte(`{}`),
	}, rec.Ended())
}
