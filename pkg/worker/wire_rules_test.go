package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The same request id in two batches is two requests: publish dedup is
// scoped by batch, so batch B is not dropped as a duplicate of batch A, and
// both results are stored.
func TestRequestIDReusedInAnotherBatchRunsInBoth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.newBatch(t, "b-reuse-a", "gpt-4o", 1, time.Hour)
	b := e.newBatch(t, "b-reuse-b", "gpt-4o", 1, time.Hour)
	a[0].ID, b[0].ID = "shared-id", "shared-id"
	e.startWorker(t, workerOpts{})

	e.publish(t, a)
	e.waitResults(t, "b-reuse-a", 1, 30*time.Second)
	e.publish(t, b) // well inside the duplicate window
	resB := e.waitResults(t, "b-reuse-b", 1, 30*time.Second)
	require.Equal(t, lifecycle.StateCompleted, resB["shared-id"].State)
	require.Equal(t, "b-reuse-b", resB["shared-id"].BatchID)

	for _, id := range []string{"b-reuse-a", "b-reuse-b"} {
		waitFor(t, 10*time.Second, id+" finalized", func() bool { return e.batch(t, id).Status == lifecycle.BatchCompleted })
		require.Equal(t, lifecycle.Counts{Total: 1, Completed: 1}, e.batch(t, id).Counts, id)
		require.Equal(t, uint64(1), e.resultCount(t, id), id)
	}
	require.Equal(t, 2, e.mock.CallsFor("shared-id"), "one upstream call per batch")
}
