package queue_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

func TestModelConsumerInactiveThreshold(t *testing.T) {
	t.Parallel()
	const threshold = 2 * time.Second
	b := setup(t, func(c *queue.Config) { c.ModelInactiveThreshold = threshold })
	seen := newIDSet()
	h := func(ctx context.Context, d transport.Delivery) {
		seen.add(d.Request().ID)
		_ = d.Ack(ctx)
	}
	cctx, cancel := context.WithCancel(context.Background())
	co, err := b.c.Consume(cctx, queue.ConsumeOptions{Slots: newSlotTable(4).get, Handler: h})
	require.NoError(t, err)
	publishN(t, b.c, "a", "m1", "b1", 3)
	waitFor(t, eventually, "three handled", func() bool { return seen.len() == 3 })
	names := consumerNames(t, b.js)
	require.Len(t, names, 1)
	cons, err := b.js.Consumer(ctx(t), "SALVO_REQUESTS", names[0])
	require.NoError(t, err)
	require.Equal(t, threshold, cons.CachedInfo().Config.InactiveThreshold)

	// A live, idle fetch loop keeps its consumer for well over the threshold.
	holds(t, 3*threshold, 200*time.Millisecond, "the live loop's consumer", func() bool { return len(consumerNames(t, b.js)) == 1 })
	// Nobody pulls any more: the server deletes it.
	co.Stop()
	cancel()
	require.NoError(t, co.Wait(ctx(t)))
	waitFor(t, eventually, "the server to delete the consumer", func() bool { return len(consumerNames(t, b.js)) == 0 })

	// Messages for the model again: a new consumer is created and delivers.
	consume(t, b.c, queue.ConsumeOptions{Slots: newSlotTable(4).get, Handler: h})
	publishN(t, b.c, "c", "m1", "b1", 3)
	waitFor(t, eventually, "six handled", func() bool { return seen.len() == 6 })
	for _, id := range []string{"a-0", "a-1", "a-2", "c-0", "c-1", "c-2"} {
		require.Equal(t, 1, seen.count(id), id)
	}
}

func TestIdleFetchLoopStopsAndRestarts(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.ModelIdleTimeout = 2 * time.Second })
	slots := newSlotTable(2)
	seen := newIDSet()
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: slots.get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			seen.add(d.Request().ID)
			_ = d.Ack(ctx)
		},
	})
	publishN(t, b.c, "a", "m1", "b1", 5)
	waitFor(t, eventually, "five handled", func() bool { return seen.len() == 5 })
	require.Equal(t, []string{"m1"}, co.Models())
	waitFor(t, eventually, "the idle loop to stop", func() bool { return len(co.Models()) == 0 })
	require.Zero(t, slots.get("m1").InUse(), "slot leaked by the stopped loop")
	require.NoError(t, co.Healthy())

	publishN(t, b.c, "c", "m1", "b1", 5)
	waitFor(t, eventually, "ten handled", func() bool { return seen.len() == 10 })
	require.True(t, slices.Contains(co.Models(), "m1"), "discovery did not restart the loop")
	for i := range 5 {
		require.Equal(t, 1, seen.count("a-"+itoa(i)))
		require.Equal(t, 1, seen.count("c-"+itoa(i)))
	}
	waitFor(t, eventually, "every slot released", func() bool { return slots.get("m1").InUse() == 0 })
	require.Zero(t, streamMsgs(t, b.js, "SALVO_REQUESTS"))
}
