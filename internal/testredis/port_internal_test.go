package testredis

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNewMovesOffATakenPort: a port found free can be taken by another
// test's server before redis-server binds it. New then runs its own
// server on another port instead of talking to the other one, which
// would vanish when that test ends.
func TestNewMovesOffATakenPort(t *testing.T) {
	other := New(t, WithPassword("other")) // a server of its own whatever REDIS_URL says
	first := true
	pickPort = func(t testing.TB) int {
		if first {
			first = false
			return other.port
		}
		return freePort(t)
	}
	t.Cleanup(func() { pickPort = freePort })

	mine := New(t, WithPassword("other"))
	require.False(t, first, "New was handed the taken port")
	require.NotEqual(t, other.Addr, mine.Addr)

	other.Stop()
	ctx := context.Background()
	require.NoError(t, mine.Client.Ping(ctx).Err(), "the server New returned is its own")
	require.NoError(t, mine.Client.Set(ctx, mine.Prefix+"k", "v", 0).Err())
}
