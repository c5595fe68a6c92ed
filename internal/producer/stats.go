package producer

import (
	"context"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// Stats summarise a batch's results: the upstream retries they took and
// the latency of their last attempts.
type Stats struct {
	// Results is the number of results read.
	Results int
	// Retries counts the attempts beyond each request's first.
	Retries int64
	// Timed is the number of results with a latency (an upstream call).
	Timed int
	// P50 and P99 are latency percentiles of the last attempt, to within
	// the histogram's 5 % buckets; zero when no result had a call.
	P50, P99 time.Duration
}

// latencyHist is a log-bucketed histogram of durations: bucket i holds
// durations around latencyBase·latencyGrowth^i, so any percentile is
// known to within 5 %, in a fixed 400 counters whatever the count.
type latencyHist struct {
	buckets [400]int64
	n       int64
}

const (
	latencyBase   = float64(time.Millisecond) / 10 // 100 µs
	latencyGrowth = 1.05
)

func (h *latencyHist) add(d time.Duration) {
	i := 0
	if v := float64(d); v > latencyBase {
		i = int(math.Log(v/latencyBase) / math.Log(latencyGrowth))
	}
	h.buckets[min(i, len(h.buckets)-1)]++
	h.n++
}

// quantile is the upper bound of the bucket holding the q-quantile.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.buckets {
		seen += c
		if seen >= rank {
			return time.Duration(latencyBase * math.Pow(latencyGrowth, float64(i+1)))
		}
	}
	return time.Duration(latencyBase * math.Pow(latencyGrowth, float64(len(h.buckets))))
}

// ResultStats reads a batch's results (in bounded memory: the ids read and
// a fixed histogram) and summarises their retries and latency.
func ResultStats(ctx context.Context, nc *nats.Conn, prefix, batchID string) (Stats, error) {
	q, err := queue.New(nc, queue.Config{Prefix: client.New(nc, prefix).Prefix()}, zerolog.Nop())
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	var h latencyHist
	escalated := map[string]bool{} // ids with a line before their racing copy's
	err = q.ReplayResults(ctx, batchID, func(res *lifecycle.Result) error {
		if res.EscalationID == "" && res.State != lifecycle.StateCompleted {
			escalated[res.ID] = true // a copy's line may follow and replace it
		} else if res.EscalationID != "" && escalated[res.ID] {
			return nil // replaces a line already counted: one result per request
		}
		st.Results++
		if res.Attempts > 1 {
			st.Retries += int64(res.Attempts - 1)
		}
		if res.DurationMS > 0 {
			h.add(time.Duration(res.DurationMS) * time.Millisecond)
		}
		return nil
	})
	st.Timed = int(h.n)
	st.P50, st.P99 = h.quantile(0.50), h.quantile(0.99)
	return st, err
}
