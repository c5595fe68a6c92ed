package transport_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/transport"
)

func TestSlots(t *testing.T) {
	t.Parallel()
	s := transport.NewSlots(3)
	require.Equal(t, 2, s.TryAcquire(2))
	require.Equal(t, 1, s.TryAcquire(5))
	require.Equal(t, 0, s.TryAcquire(1))
	require.Equal(t, 3, s.InUse())

	// Lowering the limit below use admits nobody until use drops under it.
	s.SetLimit(1)
	s.Release(1)
	require.Equal(t, 0, s.TryAcquire(1))
	s.Release(2)
	require.Equal(t, 1, s.TryAcquire(1))

	// Acquire blocks until a release.
	done := make(chan error, 1)
	go func() { done <- s.Acquire(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Acquire returned (%v) while no slot was free", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Release(1)
	require.NoError(t, <-done)

	// Acquire gives up with its context.
	c, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.Acquire(c), context.Canceled)

	s.SetLimit(-4)
	require.Equal(t, 0, s.Limit())
	s.Release(10)
	require.Equal(t, 0, s.InUse())
}
