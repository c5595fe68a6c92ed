package api_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// countCalls counts the calls of the log that equal call.
func countCalls(calls []string, call string) int {
	n := 0
	for _, c := range calls {
		if c == call {
			n++
		}
	}
	return n
}

func TestCancelStoresThenPublishesThenRepliesThenEndsTheQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.ok(t, api.EndpointBatchCreate, `{"id":"b1","total":5}`, nil)
	// EndQueued blocks until released: the reply must not wait for it.
	release := make(chan struct{})
	b.backend.blockEndQueued(release)

	var got api.BatchObject
	b.ok(t, api.EndpointBatchCancel, `{"id":"b1"}`, &got)
	require.Equal(t, "cancelling", got.Status)
	require.NotNil(t, got.CancellingAt)

	require.Eventually(t, func() bool {
		return slices.Contains(b.backend.Calls(), "EndQueued b1")
	}, 5*time.Second, 5*time.Millisecond)
	close(release)
	calls := b.backend.Calls()
	require.Equal(t, []string{"CancelBatch b1", "Batch b1", "PublishCancel b1/", "EndQueued b1"}, calls[2:],
		"after the create and its event: store, event, then the queue")
}

func TestCancelSucceedsWhenTheControlEventIsNotPublished(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.ok(t, api.EndpointBatchCreate, `{"id":"b1"}`, nil)
	b.backend.setFail("PublishCancel", errors.New("nats: no responders"))
	var got api.BatchObject
	b.ok(t, api.EndpointBatchCancel, `{"id":"b1"}`, &got)
	require.Equal(t, "cancelling", got.Status)
	require.Eventually(t, func() bool {
		return slices.Contains(b.backend.Calls(), "EndQueued b1")
	}, 5*time.Second, 5*time.Millisecond, "Redis holds the cancel, so the queue is still ended")
}

func TestCancelRunsOneEndQueuedPerBatchAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.ok(t, api.EndpointBatchCreate, `{"id":"b1"}`, nil)
	release := make(chan struct{})
	b.backend.blockEndQueued(release)
	b.ok(t, api.EndpointBatchCancel, `{"id":"b1"}`, nil)
	require.Eventually(t, func() bool {
		return countCalls(b.backend.Calls(), "EndQueued b1") == 1
	}, 5*time.Second, 5*time.Millisecond)

	// A repeated cancel while the first EndQueued runs starts no second.
	b.ok(t, api.EndpointBatchCancel, `{"id":"b1"}`, nil)
	require.Equal(t, 2, countCalls(b.backend.Calls(), "PublishCancel b1/"))
	require.Equal(t, 1, countCalls(b.backend.Calls(), "EndQueued b1"))

	// Once it is done, a cancel runs it again (the retry after a crash).
	// The service forgets the first call just after it returns, so retry
	// the cancel (each try is a round trip) until a second one starts.
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for countCalls(b.backend.Calls(), "EndQueued b1") < 2 {
		require.True(t, time.Now().Before(deadline), "no second EndQueued")
		b.ok(t, api.EndpointBatchCancel, `{"id":"b1"}`, nil)
	}
}

func TestCancelOfAFinishedBatchOnlyReportsIt(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	b.backend.put(lifecycle.Batch{ID: "b1", CompletionWindow: "24h", Status: lifecycle.BatchCompleted, Sealed: true,
		Counts: lifecycle.Counts{Total: 1, Completed: 1}, CreatedAt: b.clock.now, ExpiresAt: b.clock.now.Add(time.Hour),
		FinalizedAt: b.clock.now, CompletedAt: b.clock.now})
	var got api.BatchObject
	b.ok(t, api.EndpointBatchCancel, `{"id":"b1"}`, &got)
	require.Equal(t, "completed", got.Status)
	require.Equal(t, []string{"CancelBatch b1", "Batch b1"}, b.backend.Calls())
}

func TestStopCancelsTheBackgroundEndQueuedAndWaitsForIt(t *testing.T) {
	t.Parallel()
	srv := testnats.New(t)
	nc := srv.Connect()
	backend := newFakeBackend()
	backend.endQueued = make(chan struct{}) // never released
	svc, err := api.New(api.Deps{Store: backend, Events: backend, Engine: backend}, api.Config{})
	require.NoError(t, err)
	require.NoError(t, svc.Start(nc))
	backend.put(lifecycle.Batch{ID: "b1", Status: lifecycle.BatchInProgress})

	msg, err := nc.Request(api.Subject("salvo", api.EndpointBatchCancel), []byte(`{"id":"b1"}`), 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(msg.Data), `"status":"cancelling"`)
	require.Eventually(t, func() bool {
		return slices.Contains(backend.Calls(), "EndQueued b1")
	}, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, svc.Stop())
	backend.mu.Lock()
	cause := backend.endQueuedCause
	backend.mu.Unlock()
	require.ErrorIs(t, cause, api.ErrStopped, "Stop returned after EndQueued saw its context cancelled")
	require.NoError(t, svc.Stop(), "a second Stop is a no-op")
	require.Error(t, svc.Start(nc), "a stopped service does not start again")
}
