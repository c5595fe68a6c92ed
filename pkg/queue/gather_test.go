package queue

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/transport"
)

func gatherLoop(limit int) *modelLoop {
	return &modelLoop{
		co:    &Consumer{c: &Client{cfg: Config{MaxFetchBatch: MaxFetchBatchDefault}}},
		slots: transport.NewSlots(limit),
	}
}

// A model with slots to spare pulls what it reserved at once.
func TestGatherPullsAtOnceWithSlotsToSpare(t *testing.T) {
	ml := gatherLoop(64)
	k := ml.slots.TryAcquire(MaxFetchBatchDefault)
	require.Equal(t, 64, k)
	require.Equal(t, 64, ml.gather(context.Background(), k))
}

// A saturated model whose handlers release their slots one at a time pulls
// them together, a share of its limit at once, not one pull per message.
func TestGatherCollectsSlotsHandlersRelease(t *testing.T) {
	ml := gatherLoop(64)
	require.Equal(t, 64, ml.slots.TryAcquire(64)) // 64 handlers running
	ml.slots.Release(1)
	k := ml.slots.TryAcquire(MaxFetchBatchDefault)
	require.Equal(t, 1, k)

	done := make(chan int, 1)
	go func() { done <- ml.gather(context.Background(), k) }()
	for range 7 {
		ml.slots.Release(1) // the handlers ending, one by one
	}
	require.Equal(t, 64/gatherShare, <-done)
	require.Equal(t, 64, ml.slots.InUse(), "every slot the gather took is held for the pull")
}

// A gather that gets too few slots gives up after gatherWait with what it
// has: a pull of a few messages beats none.
func TestGatherGivesUpAfterItsWait(t *testing.T) {
	ml := gatherLoop(64)
	require.Equal(t, 64, ml.slots.TryAcquire(64))
	ml.slots.Release(2)
	k := ml.slots.TryAcquire(MaxFetchBatchDefault)
	require.Equal(t, 2, ml.gather(context.Background(), k))
}
