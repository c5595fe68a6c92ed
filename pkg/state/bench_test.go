package state_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/pkg/state"
)

// BenchmarkTransitions measures claim(+start)/complete pairs from parallel
// goroutines against a real redis-server: two script calls, two round trips
// per request. It reports transitions/s (two per pair).
func BenchmarkTransitions(b *testing.B) { transitions(b, setup(b)) }

func transitions(b *testing.B, bu *bundle) {
	ctx := ctxT(b)
	batch := "bench"
	bu.createBatch(b, batch, 1<<50)
	var seq atomic.Int64
	b.SetParallelism(8) // GOMAXPROCS×8 goroutines keep Redis busy on a small machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := request(fmt.Sprintf("r%d", seq.Add(1)), batch)
			c, err := bu.store.Claim(ctx, state.ClaimArgs{Request: req, Owner: "bench", Delivery: 1, Start: true})
			if err != nil || c.Held == nil {
				b.Errorf("claim: %v %+v", err, c.Ended)
				return
			}
			p, _ := c.Held.Processing(bu.clock.Now())
			if _, err := bu.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte(`{"id":"x"}`)}); err != nil {
				b.Errorf("complete: %v", err)
				return
			}
		}
	})
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(2*b.N)/s, "transitions/s")
	}
	counts := bu.counts(b, batch)
	if counts.Completed != int64(b.N) {
		b.Fatalf("completed %d, want %d", counts.Completed, b.N)
	}
}

// BenchmarkTransitionsWaitReplica is BenchmarkTransitions against a
// primary with one replica on loopback, with wait_replicas 0 and 1: the
// cost of ending every pipeline with WAIT (one replication round trip,
// shared by the pipeline's calls).
func BenchmarkTransitionsWaitReplica(b *testing.B) {
	primary := testredis.New(b, testredis.WithPassword("pw-primary"))
	testredis.NewReplica(b, primary)
	for _, replicas := range []int{0, 1} {
		b.Run(fmt.Sprintf("wait_replicas=%d", replicas), func(b *testing.B) {
			clk := &fakeClock{t: base}
			cfg := state.Config{Prefix: fmt.Sprintf("%s-w%d-%d", primary.Prefix, replicas, forks.Add(1)), Clock: clk.Now, LeaseTTL: 30 * time.Second, WaitReplicas: replicas}
			st, err := state.New(primary.Client, cfg)
			require.NoError(b, err)
			transitions(b, &bundle{redis: primary, clock: clk, store: st, cfg: st.Config()})
		})
	}
}
