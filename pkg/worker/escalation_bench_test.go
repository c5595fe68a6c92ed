package worker_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// BenchmarkEscalation (make bench-escalation) runs a batch whose window is
// too short for its slow model alone through one worker process, without
// escalation and with each mode, and reports whether it finished on time.
//
// 2,000 requests for "slow" (the mock answers after 1 s) at concurrency 64
// per model: about 31 s of calls, in a 15 s window. Escalation to "fast"
// (20 ms) with a 12 s threshold, so it starts 3 s in. Each op is one batch,
// on fresh servers. Reported per op: on-time (1 when the batch turned
// completed before its expires_at), to-final-s (creation to final),
// completed, expired and superseded requests, and the mock's calls per
// model (fast-calls, slow-calls).
func BenchmarkEscalation(b *testing.B) {
	testbin.Worker(b)
	for _, mode := range []string{"none", "route", "race"} {
		b.Run("mode="+mode, func(b *testing.B) { benchEscalation(b, mode) })
	}
}

func benchEscalation(b *testing.B, mode string) {
	const (
		n         = 2000
		window    = 15 * time.Second
		threshold = 12 * time.Second
	)
	extra := sweepFast
	if mode != "none" {
		extra += fmt.Sprintf("escalations:\n  %s:\n    model: %s\n    threshold: %s\n    mode: %s\n", slowModel, fastModel, threshold, mode)
	}
	var onTime, toFinal, completed, expired, superseded, fastCalls, slowCalls float64
	for round := range b.N {
		e := newEnv(b, envOpts{mock: mockupstream.Options{Models: map[string]mockupstream.Script{
			slowModel: {Latency: &mockupstream.Latency{Min: time.Second}},
			fastModel: {Latency: &mockupstream.Latency{Min: 20 * time.Millisecond}},
		}}})
		e.startChild(b, childOpts{concurrent: 64, extra: extra})
		id := "b-esc-" + mode + "-" + strconv.Itoa(round)
		reqs := e.newBatch(b, id, slowModel, n, window)
		e.publish(b, reqs)
		var bt lifecycle.Batch
		waitFor(b, window+time.Minute, "batch "+id+" final", func() bool {
			bt = e.batch(b, id)
			return bt.Status.Terminal()
		})
		if bt.Status == lifecycle.BatchCompleted && bt.FinalizedAt.Before(bt.ExpiresAt) {
			onTime++
		}
		toFinal += bt.FinalizedAt.Sub(bt.CreatedAt).Seconds()
		completed += float64(bt.Counts.Completed)
		expired += float64(bt.Counts.Expired)
		superseded += float64(bt.Counts.Superseded)
		fastCalls += float64(e.mock.CallsForModel(fastModel))
		slowCalls += float64(e.mock.CallsForModel(slowModel))
		b.Logf("mode %s round %d: %s after %.1fs (window %s), counts %+v, results %d, calls fast %d slow %d",
			mode, round, bt.Status, bt.FinalizedAt.Sub(bt.CreatedAt).Seconds(), window, bt.Counts, bt.ResultsPublished,
			e.mock.CallsForModel(fastModel), e.mock.CallsForModel(slowModel))
	}
	ops := float64(b.N)
	b.ReportMetric(onTime/ops, "on-time")
	b.ReportMetric(toFinal/ops, "to-final-s")
	b.ReportMetric(completed/ops, "completed")
	b.ReportMetric(expired/ops, "expired")
	b.ReportMetric(superseded/ops, "superseded")
	b.ReportMetric(fastCalls/ops, "fast-calls")
	b.ReportMetric(slowCalls/ops, "slow-calls")
}
