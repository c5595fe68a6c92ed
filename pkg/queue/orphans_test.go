package queue_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
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
	// The server moves the ack floor past the exhausted message as it
	// settles the second ack, not always before DoubleAck returns.
	waitFor(t, eventually, "the ack floor past the exhausted message", func() bool {
		info, err := cons.Info(ctx(t))
		require.NoError(t, err)
		return info.AckFloor.Stream >= seq && info.NumAckPending == 0
	})
	waitFor(t, eventually, "the advisory", func() bool { return streamMsgs(t, b.js, "SALVO_ADVISORIES") == 1 })
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
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 2 })
	exhaust(t, b, "orphan-1")
	adv, err := b.js.Stream(ctx(t), "SALVO_ADVISORIES")
	require.NoError(t, err)
	require.NoError(t, adv.Purge(ctx(t)))

	var handled, poisoned atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
		OnPoison: func(context.Context, queue.Poison) error {
			poisoned.Add(1)
			return nil
		},
	})
	waitFor(t, queue.OrphanGrace+eventually, "the sweep to remove the orphan", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	require.Zero(t, handled.Load(), "an orphan reached the handler")
	require.Zero(t, poisoned.Load(), "an orphan went to OnPoison")
	waitFor(t, eventually, "healthy", func() bool { return co.Healthy() == nil })
}

// A poison message sits below the ack floor too, but its advisory is
// pending: the sweep leaves it to the advisory loop however long
// OnPoison takes, so its failure is recorded before it goes.
func TestOrphanSweepLeavesPoisonToAdvisoryLoop(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 2 })
	exhaust(t, b, "poison-slow")

	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var mu sync.Mutex
	var calls []string
	consume(t, b.c, queue.ConsumeOptions{
		Slots:   newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) { _ = d.Nak(ctx, 0) },
		OnPoison: func(ctx context.Context, p queue.Poison) error {
			mu.Lock()
			calls = append(calls, p.Request.ID)
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
	waitFor(t, eventually, "the poison report", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 })
	// Several sweeps past the grace period while the advisory is unsettled.
	holds(t, queue.OrphanGrace+time.Second, 100*time.Millisecond, "the poison message kept until its advisory is settled",
		func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 1 })
	unblock()
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	waitFor(t, eventually, "the advisories stream to empty", streamEmpty(t, b.js, "SALVO_ADVISORIES"))
	mu.Lock()
	require.Equal(t, "poison-slow", calls[0])
	mu.Unlock()
}
