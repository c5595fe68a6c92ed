package producer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLatencyHistQuantilesWithinFivePercent: the histogram's percentiles
// stay within one 5 % bucket of the exact ones.
func TestLatencyHistQuantilesWithinFivePercent(t *testing.T) {
	var h latencyHist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.50, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(c.q)
		require.GreaterOrEqual(t, got, c.want, "q%.2f", c.q)
		require.LessOrEqual(t, float64(got), float64(c.want)*1.05*1.05, "q%.2f: %s", c.q, got)
	}
	var empty latencyHist
	require.Zero(t, empty.quantile(0.5))
	h.add(100 * time.Hour) // beyond the last bucket: counted in it
	require.Equal(t, int64(1001), h.n)
}
