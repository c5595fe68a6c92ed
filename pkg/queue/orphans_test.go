package queue_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// exhaust publishes a request on model "m" and drives the model consumer
// by hand until the server gives the message up (MaxDeliver naks) and the
// consumer's ack floor passes it, while the stream keeps it and a
// max-deliveries advisory lands in the ADVISORIES stream. It returns the
// message's stream sequence.
func exhaust(t *testing.T, b *bundle, id string) uint64 {
	t.Helper()
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest(id, "m", "b")))
	cons, err := b.c.EnsureModelConsumer(ctx(t), "m")
	require.NoError(t, err)
	var seq uint64
	for i := 0; i < b.c.Config().MaxDeliver; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			require.NoError(t, err)
			seq = meta.Sequence.Stream
			require.NoError(t, msg.Nak())
		}
		require.Equal(t, 1, got, "delivery %d", i+1)
	}
	// The next pull finds the message exhausted and drops it from the
	// pending set; the ack floor passes it at the next ack, here of a
	// second request.
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest(id+"-next", "m", "b")))
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	got := 0
	for msg := range batch.Messages() {
		got++
		meta, err := msg.Metadata()
		require.NoError(t, err)
		require.Greater(t, meta.Sequence.Stream, seq, "message delivered past MaxDeliver")
		require.NoError(t, msg.DoubleAck(ctx(t)))
	}
	require.Equal(t, 1, got)
	info, err := cons.Info(ctx(t))
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.AckFloor.Stream, seq, "ack floor")
	require.Zero(t, info.NumAckPending)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_ADVISORIES") == 1 }, eventually, tick)
	require.Equal(t, uint64(1), streamMsgs(t, b.js, "SALVO_REQUESTS"))
	return seq
}

// A stored request message below its consumer's ack floor, with no
// advisory to settle it, is what a server shutdown leaves behind when it
// cuts an ack between the consumer and the stream (the consumer records the
// ack, the stream never deletes the message, a work-queue stream is not
// reconciled on restart). Here the advisory is purged to get that state
// deterministically. The sweep removes the message; nothing runs it again.
func TestOrphanSweepRemovesMessageBelowAckFloor(t *testing.T) {
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 2 })
	exhaust(t, b, "orphan-1")
	adv, err := b.js.Stream(ctx(t), "SALVO_ADVISORIES")
	require.NoError(t, err)
	require.NoError(t, adv.Purge(ctx(t)))

	var handled, poisoned atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
		OnMaxDeliveries: func(context.Context, *lifecycle.Request, uint64) error {
			poisoned.Add(1)
			return nil
		},
	})
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 },
		queue.OrphanGrace+eventually, tick)
	require.Zero(t, handled.Load(), "an orphan reached the handler")
	require.Zero(t, poisoned.Load(), "an orphan went to OnMaxDeliveries")
	require.Eventually(t, func() bool { return co.Healthy() == nil }, eventually, tick)
}

// A poison message sits below the ack floor too, but its advisory is
// pending: the sweep leaves it to the advisory loop however long
// OnMaxDeliveries takes, so its failure is recorded before it goes.
func TestOrphanSweepLeavesPoisonToAdvisoryLoop(t *testing.T) {
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 2 })
	exhaust(t, b, "poison-slow")

	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var mu sync.Mutex
	var calls []string
	consume(t, b.c, queue.ConsumeOptions{
		Slots:   newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) { _ = d.Nak(ctx, 0) },
		OnMaxDeliveries: func(ctx context.Context, req *lifecycle.Request, _ uint64) error {
			mu.Lock()
			calls = append(calls, req.ID)
			mu.Unlock()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	t.Cleanup(unblock) // before consume's cleanup: Stop waits for the advisory loop
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 }, eventually, tick)
	// Several sweeps past the grace period while the advisory is unsettled.
	require.Never(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 },
		queue.OrphanGrace+time.Second, 100*time.Millisecond, "the sweep removed a poison message before its advisory was settled")
	unblock()
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_ADVISORIES") == 0 }, eventually, tick)
	mu.Lock()
	require.Equal(t, "poison-slow", calls[0])
	mu.Unlock()
}
