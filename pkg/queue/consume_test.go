package queue_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

// delivered is what a handler saw of one delivery and how finishing it
// went; handlers send it to the test goroutine, which asserts.
type delivered struct {
	id  string
	n   uint64
	at  time.Time
	err error
}

// next receives one delivery from ch or fails the test after eventually.
func next(t *testing.T, ch <-chan delivered) delivered {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(eventually):
		t.Fatal("no delivery")
		return delivered{}
	}
}

func TestNakComesBackNoEarlierThanDelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const delay = 700 * time.Millisecond
	got := make(chan delivered, 4)
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			at := time.Now()
			var err error
			if d.NumDelivered() == 1 {
				err = d.Nak(ctx, delay)
			} else {
				err = d.Ack(ctx)
			}
			got <- delivered{id: d.Request().ID, n: d.NumDelivered(), at: at, err: err}
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("nak-1", "m", "b")))
	first, second := next(t, got), next(t, got)
	require.NoError(t, first.err, "nak")
	require.NoError(t, second.err, "ack")
	require.Equal(t, []uint64{1, 2}, []uint64{first.n, second.n})
	require.GreaterOrEqual(t, second.at.Sub(first.at), delay)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
}

func TestInProgressKeepsSlowMessageFromRedelivery(t *testing.T) {
	t.Parallel()
	b := setup(t) // AckWait 1s
	var calls atomic.Int32
	got := make(chan delivered, 4)
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			calls.Add(1)
			stop := keepInProgress(ctx, d, 250*time.Millisecond)
			// Slow work: three and a half AckWaits.
			select {
			case <-time.After(3500 * time.Millisecond):
			case <-ctx.Done():
			}
			stop()
			got <- delivered{n: d.NumDelivered(), err: d.Ack(ctx)}
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("slow-1", "m", "b")))
	d := next(t, got)
	require.NoError(t, d.err)
	require.Equal(t, uint64(1), d.n)
	require.Equal(t, int32(1), calls.Load(), "the message was redelivered while in progress")
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
}

func TestUnackedMessageRedeliveredToAnotherInstance(t *testing.T) {
	t.Parallel()
	b := setup(t) // AckWait 1s
	gotA := make(chan delivered, 1)
	// Instance A takes the message, never acks it and keeps its only slot.
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(1).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			gotA <- delivered{n: d.NumDelivered()}
			<-ctx.Done() // like a worker that hung; canceled at cleanup
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("crash-1", "m", "b")))
	require.Equal(t, uint64(1), next(t, gotA).n)

	// Instance B: its own connection and client, the same durable consumer.
	ncB := b.srv.Connect()
	cB := newClient(t, ncB, b.cfg)
	gotB := make(chan delivered, 1)
	consume(t, cB, queue.ConsumeOptions{
		Slots: newSlotTable(1).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			gotB <- delivered{n: d.NumDelivered(), err: d.Ack(ctx)}
		},
	})
	d := next(t, gotB)
	require.NoError(t, d.err)
	require.Equal(t, uint64(2), d.n, "the unacked message was redelivered to instance B")
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
}

func TestSaturatedModelDoesNotBlockAnother(t *testing.T) {
	t.Parallel()
	b := setup(t)
	release := make(chan struct{})
	var bigRunning atomic.Int32
	small := newIDSet()
	ackErrs := make(chan error, 30)
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(2).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			if d.Request().Model == "big" {
				bigRunning.Add(1)
				stop := keepInProgress(ctx, d, 300*time.Millisecond)
				select {
				case <-release:
				case <-ctx.Done():
				}
				stop()
			} else {
				small.add(d.Request().ID)
			}
			ackErrs <- d.Ack(ctx)
		},
	})
	publishN(t, b.c, "big", "big", "b1", 10)
	waitFor(t, eventually, "two big requests running", func() bool { return bigRunning.Load() == 2 })
	// "big" is saturated (both slots busy, 8 queued); "small" still flows.
	publishN(t, b.c, "small", "small", "b2", 20)
	waitFor(t, eventually, "every small request", func() bool { return small.len() == 20 })
	require.Equal(t, int32(2), bigRunning.Load())
	close(release)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	for range 30 {
		require.NoError(t, <-ackErrs)
	}
}

// A model whose slots are all busy for longer than the health check's
// staleness bound is waiting, not stuck: it stays healthy.
func TestSaturatedModelStaysHealthy(t *testing.T) {
	t.Parallel()
	b := setup(t) // FetchExpiry 1s: stale after 5s
	release := make(chan struct{})
	var running atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(1).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			running.Add(1)
			stop := keepInProgress(ctx, d, 300*time.Millisecond)
			select {
			case <-release:
			case <-ctx.Done():
			}
			stop()
			_ = d.Ack(ctx)
		},
	})
	publishN(t, b.c, "s", "m", "b", 2)
	waitFor(t, eventually, "the slot taken", func() bool { return running.Load() == 1 })
	holds(t, 6*time.Second, 200*time.Millisecond, "a saturated model's health", func() bool { return co.Healthy() == nil })
	close(release)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
}

func TestFetchNeverHoldsMoreThanFreeSlots(t *testing.T) {
	t.Parallel()
	b := setup(t)
	slots := newSlotTable(3)
	release := make(chan struct{}, 100)
	var inHandler, maxOver atomic.Int32
	handled := newIDSet()
	ackErrs := make(chan error, 30)
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: slots.get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			n := inHandler.Add(1)
			if int(n) > slots.get("m").Limit() {
				maxOver.Add(1)
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			inHandler.Add(-1)
			ackErrs <- d.Ack(ctx)
			handled.add(d.Request().ID)
		},
	})
	publishN(t, b.c, "s", "m", "b", 30)
	name, err := b.c.ModelConsumerName("m")
	require.NoError(t, err)
	ackPending := func() int {
		cons, err := b.js.Consumer(ctx(t), "SALVO_REQUESTS", name)
		require.NoError(t, err)
		info, err := cons.Info(ctx(t))
		require.NoError(t, err)
		return info.NumAckPending
	}
	waitFor(t, eventually, "three handlers running", func() bool { return inHandler.Load() == 3 })
	// Sample for a while: the server never has more than 3 messages out.
	holds(t, 500*time.Millisecond, 25*time.Millisecond, "at most 3 unacked", func() bool { return ackPending() <= 3 })
	require.Equal(t, 3, ackPending())

	// Raise the limit at runtime: the loop pulls exactly the new free slots.
	slots.get("m").SetLimit(5)
	waitFor(t, eventually, "five handlers running", func() bool { return inHandler.Load() == 5 })
	holds(t, 250*time.Millisecond, 25*time.Millisecond, "at most 5 unacked", func() bool { return ackPending() <= 5 })
	// Lower it: nothing new starts until use is below 2.
	slots.get("m").SetLimit(2)
	for range 30 {
		release <- struct{}{}
	}
	waitFor(t, eventually, "every request handled", func() bool { return handled.len() == 30 })
	for range 30 {
		require.NoError(t, <-ackErrs)
	}
	require.Equal(t, int32(0), maxOver.Load(), "a handler ran beyond the slot limit")
	require.Equal(t, 0, co.Running())
	require.NoError(t, co.Healthy())
	require.Equal(t, []string{"m"}, co.Models())
}

func TestDeletedConsumerIsRecreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	handled := newIDSet()
	var mu sync.Mutex
	var ackErrs []error
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			err := d.Ack(ctx)
			mu.Lock()
			ackErrs = append(ackErrs, err)
			mu.Unlock()
			handled.add(d.Request().ID)
		},
	})
	publishN(t, b.c, "a", "m", "b", 5)
	waitFor(t, eventually, "the first five", func() bool { return handled.len() == 5 })

	name, err := b.c.ModelConsumerName("m")
	require.NoError(t, err)
	require.NoError(t, b.js.DeleteConsumer(ctx(t), "SALVO_REQUESTS", name))
	publishN(t, b.c, "c", "m", "b", 5)
	waitFor(t, eventually, "five more after the delete", func() bool { return handled.len() == 10 })
	waitFor(t, eventually, "healthy again", func() bool { return co.Healthy() == nil })
	mu.Lock()
	for _, err := range ackErrs {
		require.NoError(t, err)
	}
	mu.Unlock()

	co.Stop()
	co.Stop()
	require.ErrorIs(t, co.Healthy(), queue.ErrStopped)
}
