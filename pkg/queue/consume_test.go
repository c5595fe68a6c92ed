package queue_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
)

func TestNakComesBackNoEarlierThanDelay(t *testing.T) {
	b := setup(t)
	const delay = 700 * time.Millisecond
	var mu sync.Mutex
	var times []time.Time
	var deliveries []uint64
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			mu.Lock()
			times = append(times, time.Now())
			deliveries = append(deliveries, d.NumDelivered())
			n := len(times)
			mu.Unlock()
			if n == 1 {
				require.NoError(t, d.Nak(ctx, delay))
				return
			}
			require.NoError(t, d.Ack(ctx))
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("nak-1", "m", "b")))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(times) == 2 }, eventually, tick)
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, times[1].Sub(times[0]), delay)
	require.Equal(t, []uint64{1, 2}, deliveries)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
}

func TestInProgressKeepsSlowMessageFromRedelivery(t *testing.T) {
	b := setup(t) // AckWait 1s
	var calls atomic.Int32
	done := make(chan uint64, 4)
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			calls.Add(1)
			stop := d.KeepInProgress(ctx, 250*time.Millisecond)
			// Slow work: three and a half AckWaits.
			time.Sleep(3500 * time.Millisecond)
			stop()
			require.NoError(t, d.Ack(ctx))
			done <- d.NumDelivered()
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("slow-1", "m", "b")))
	select {
	case n := <-done:
		require.Equal(t, uint64(1), n)
	case <-time.After(eventually):
		t.Fatal("slow handler never finished")
	}
	require.Equal(t, int32(1), calls.Load(), "the message was redelivered while in progress")
	require.Equal(t, uint64(0), streamMsgs(t, b.js, "SALVO_REQUESTS"))
}

func TestUnackedMessageRedeliveredToAnotherInstance(t *testing.T) {
	b := setup(t) // AckWait 1s
	gotA := make(chan uint64, 1)
	// Instance A takes the message, never acks it and keeps its only slot.
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(1).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			gotA <- d.NumDelivered()
			<-ctx.Done() // like a worker that hung; canceled at cleanup
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("crash-1", "m", "b")))
	select {
	case n := <-gotA:
		require.Equal(t, uint64(1), n)
	case <-time.After(eventually):
		t.Fatal("instance A never got the message")
	}

	// Instance B: its own connection and client, the same durable consumer.
	ncB := b.srv.Connect()
	cB := newClient(t, ncB, b.cfg)
	gotB := make(chan uint64, 1)
	consume(t, cB, queue.ConsumeOptions{
		Slots: newSlotTable(1).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			require.NoError(t, d.Ack(ctx))
			gotB <- d.NumDelivered()
		},
	})
	select {
	case n := <-gotB:
		require.Equal(t, uint64(2), n)
	case <-time.After(eventually):
		t.Fatal("the unacked message was not redelivered to instance B")
	}
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
}

func TestSaturatedModelDoesNotBlockAnother(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	var bigRunning atomic.Int32
	small := newIDSet()
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(2).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			if d.Request().Model == "big" {
				bigRunning.Add(1)
				stop := d.KeepInProgress(ctx, 0)
				<-release
				stop()
			} else {
				small.add(d.Request().ID)
			}
			require.NoError(t, d.Ack(ctx))
		},
	})
	publishN(t, b.c, "big", "big", "b1", 10)
	require.Eventually(t, func() bool { return bigRunning.Load() == 2 }, eventually, tick)
	// "big" is saturated (both slots busy, 8 queued); "small" still flows.
	publishN(t, b.c, "small", "small", "b2", 20)
	require.Eventually(t, func() bool { return small.len() == 20 }, eventually, tick)
	require.Equal(t, int32(2), bigRunning.Load())
	close(release)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
}

func TestFetchNeverHoldsMoreThanFreeSlots(t *testing.T) {
	b := setup(t)
	slots := newSlotTable(3)
	release := make(chan struct{}, 100)
	var inHandler, maxOver atomic.Int32
	handled := newIDSet()
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: slots.get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			n := inHandler.Add(1)
			if int(n) > slots.get("m").Limit() {
				maxOver.Add(1)
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			inHandler.Add(-1)
			require.NoError(t, d.Ack(ctx))
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
	require.Eventually(t, func() bool { return inHandler.Load() == 3 }, eventually, tick)
	// Sample for a while: the server never has more than 3 messages out.
	for range 20 {
		require.LessOrEqual(t, ackPending(), 3)
		time.Sleep(25 * time.Millisecond)
	}
	require.Equal(t, 3, ackPending())

	// Raise the limit at runtime: the loop pulls exactly the new free slots.
	slots.get("m").SetLimit(5)
	require.Eventually(t, func() bool { return inHandler.Load() == 5 }, eventually, tick)
	for range 10 {
		require.LessOrEqual(t, ackPending(), 5)
		time.Sleep(25 * time.Millisecond)
	}
	// Lower it: nothing new starts until use is below 2.
	slots.get("m").SetLimit(2)
	for range 30 {
		release <- struct{}{}
	}
	require.Eventually(t, func() bool { return handled.len() == 30 }, eventually, tick)
	require.Equal(t, int32(0), maxOver.Load(), "a handler ran beyond the slot limit")
	require.Equal(t, 0, co.Running())
	require.NoError(t, co.Healthy())
	require.Equal(t, []string{"m"}, co.Models())
}

func TestDeletedConsumerIsRecreated(t *testing.T) {
	b := setup(t)
	handled := newIDSet()
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			require.NoError(t, d.Ack(ctx))
			handled.add(d.Request().ID)
		},
	})
	publishN(t, b.c, "a", "m", "b", 5)
	require.Eventually(t, func() bool { return handled.len() == 5 }, eventually, tick)

	name, err := b.c.ModelConsumerName("m")
	require.NoError(t, err)
	require.NoError(t, b.js.DeleteConsumer(ctx(t), "SALVO_REQUESTS", name))
	publishN(t, b.c, "c", "m", "b", 5)
	require.Eventually(t, func() bool { return handled.len() == 10 }, eventually, tick)
	require.Eventually(t, func() bool { return co.Healthy() == nil }, eventually, tick)

	co.Stop()
	co.Stop()
	require.ErrorIs(t, co.Healthy(), queue.ErrStopped)
}
