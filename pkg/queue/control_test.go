package queue_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

func TestCancelReachesEveryInstance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const instances = 3
	var mu sync.Mutex
	got := make([][]queue.ControlEvent, instances)
	for i := range instances {
		c := newClient(t, b.srv.Connect(), b.cfg)
		stop, err := c.SubscribeControl(func(ev queue.ControlEvent) {
			mu.Lock()
			got[i] = append(got[i], ev)
			mu.Unlock()
		})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, stop()); require.NoError(t, stop()) })
	}
	require.NoError(t, b.c.PublishCancel(ctx(t), "batch-1", ""))
	require.NoError(t, b.c.PublishCancel(ctx(t), "batch-1", "req/1"))
	require.NoError(t, b.c.PublishSupersede(ctx(t), "req-2", "req-2-esc"))
	require.NoError(t, b.c.PublishHold(ctx(t), "key:abc", "org/model:v1"))
	require.Error(t, b.c.PublishHold(ctx(t), "", "m"), "a hold names its budget")
	// A last event from the same connection arrives after every earlier
	// one, so once each instance has it any duplicate would be in.
	require.NoError(t, b.c.PublishCancel(ctx(t), "sentinel", ""))
	waitFor(t, eventually, "the sentinel at every instance", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, evs := range got {
			if len(evs) == 0 || evs[len(evs)-1].BatchID != "sentinel" {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for i, evs := range got {
		require.Len(t, evs, 5, "instance %d", i)
		require.Equal(t, queue.KindCancel, evs[0].Kind)
		require.Equal(t, "batch-1", evs[0].BatchID)
		require.Empty(t, evs[0].RequestID)
		require.Equal(t, "req/1", evs[1].RequestID)
		require.Equal(t, queue.KindSupersede, evs[2].Kind)
		require.Equal(t, "req-2", evs[2].RequestID)
		require.Equal(t, "req-2-esc", evs[2].By)
		require.Equal(t, queue.KindHold, evs[3].Kind)
		require.Equal(t, "key:abc", evs[3].Budget)
		require.Equal(t, "org/model:v1", evs[3].Model)
		require.False(t, evs[0].At.IsZero())
	}
}

func TestPurgeBatchRemovesOnlyItsQueuedMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	publishN(t, b.c, "a1", "model-a", "batch-a", 3)
	publishN(t, b.c, "a2", "model/b", "batch-a", 2)
	publishN(t, b.c, "b", "model-a", "batch-b", 4)
	publishN(t, b.c, "n", "model-a", "", 1)
	n, err := b.c.PurgeBatch(ctx(t), "batch-a", 0)
	require.NoError(t, err)
	require.Equal(t, uint64(5), n)
	require.Equal(t, uint64(5), streamMsgs(t, b.js, "SALVO_REQUESTS"))
}

func TestBatchEventsAreStoredAndDeduplicated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := queue.BatchEvent{Type: lifecycle.EventFailed, Batch: lifecycle.Batch{ID: "batch-9", Status: lifecycle.BatchFailed}}
	require.NoError(t, b.c.PublishBatchEvent(ctx(t), ev))
	require.NoError(t, b.c.PublishBatchEvent(ctx(t), ev))
	ev.Type, ev.Batch.Status = lifecycle.EventCompleted, lifecycle.BatchCompleted
	require.NoError(t, b.c.PublishBatchEvent(ctx(t), ev))
	for _, bad := range []lifecycle.BatchEventType{"bogus", lifecycle.BatchEventType(lifecycle.BatchInProgress)} {
		require.ErrorIs(t, b.c.PublishBatchEvent(ctx(t), queue.BatchEvent{Type: bad, Batch: ev.Batch}), queue.ErrInvalidRequest, bad)
	}
	s, err := b.js.Stream(ctx(t), "SALVO_RESULTS")
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(ctx(t), "salvo.evt.batch.batch-9")
	require.NoError(t, err)
	require.Contains(t, string(m.Data), `"type":"completed"`)
	require.Equal(t, uint64(2), streamMsgs(t, b.js, "SALVO_RESULTS"))
}
