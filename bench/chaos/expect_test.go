package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/invariant"
)

// judged is a run of sc with the given faults, outside any servers: what
// the judging functions read of a run.
func judged(sc *scenario, lag time.Duration, faults ...fault) *run {
	return &run{
		sc: sc, sz: sizes["short"], faults: faults,
		e: &env{prof: profile{replicaLag: lag}, res: &resultWatch{byBatch: map[string]int{}, byID: map[string][]outcome{}}},
	}
}

func TestCheckFaultsFailsAScenarioThatMissedItsFaults(t *testing.T) {
	sc := &scenario{
		name:      "kills",
		inject:    func(context.Context, *run) error { return nil },
		minFaults: func(sz size) map[string]int { return map[string]int{"kill worker": sz.kills, "kill nats-": 1} },
	}
	two := judged(sc, 0, fault{Kind: "kill worker"}, fault{Kind: "kill worker"}, fault{Kind: "kill nats-1 of 3, back after 3s"})
	two.checkFaults()
	require.Len(t, two.failures, 1)
	require.Contains(t, two.failures[0], `2 of the 3 planned faults "kill worker"`)

	all := judged(sc, 0, fault{Kind: "kill worker"}, fault{Kind: "kill worker"}, fault{Kind: "kill worker"},
		fault{Kind: "kill nats-0 of 3, back after 3s"})
	all.checkFaults()
	require.Empty(t, all.failures)

	none := judged(&scenario{inject: sc.inject}, 0)
	none.checkFaults()
	require.Equal(t, []string{"no fault was injected before the batches ended"}, none.failures)
}

func TestInSyncFailoverNeedsACleanReport(t *testing.T) {
	sc := &scenario{name: "sentinel-failover"}
	doubled := &invariant.Report{Doubled: 1, Violations: []string{"doubled: r1: 2 result messages"}}
	err := expectFailoverLoss(judged(sc, 0), doubled)
	require.ErrorContains(t, err, "the replica was in sync")
	require.ErrorContains(t, err, "r1: 2 result messages")

	require.NoError(t, expectFailoverLoss(judged(sc, 0), &invariant.Report{}))
}

func TestLaggingFailoverNeedsTheKill(t *testing.T) {
	err := expectFailoverLoss(judged(&scenario{name: "sentinel-failover-lagging"}, time.Second), &invariant.Report{})
	require.ErrorContains(t, err, "never killed")
}

func TestVolatileRestartNeedsTheRestart(t *testing.T) {
	err := expectVolatileLoss(judged(&scenario{name: "redis-restart-volatile"}, 0), &invariant.Report{})
	require.ErrorContains(t, err, "no Redis restart was injected")
}

func TestSpreadLandsEveryShareInsideTheBatch(t *testing.T) {
	require.InDeltaSlice(t, []float64{0.1, 0.45, 0.8}, spread(3, 0.1, 0.8), 1e-9)
	require.Equal(t, []float64{0.1}, spread(1, 0.1, 0.8))
}
