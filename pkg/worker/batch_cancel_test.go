package worker_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The cancel of a running batch over the batch API, with three worker
// processes and a slow upstream: every call of the batch is off the
// upstream within a second of the cancel reply (the goal is 100 ms), no
// call starts after the reply, every request has exactly one result line,
// and the batch ends cancelled with one event.
const (
	cancelWorkers     = 3
	cancelConcurrency = 150 // per worker: 450 calls in flight
	cancelModel       = "gpt-4o"
	cancelBound       = time.Second
)

// cancelUpstream answers each call after 2–5 s.
func cancelUpstream(calls *batchCalls) mockupstream.Options {
	return mockupstream.Options{Seed: 11, OnRequest: calls.hook, Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 2 * time.Second, Max: 5 * time.Second},
	}}
}

// cancelFleet is the env of the cancel runs: its worker processes serve
// the batch API.
type cancelFleet struct {
	e     *env
	api   *apiClient
	calls *batchCalls
}

func newCancelFleet(t testing.TB) *cancelFleet {
	t.Helper()
	testbin.Worker(t) // built before the clock of any wait starts
	calls := newBatchCalls()
	f := &cancelFleet{e: newEnv(t, envOpts{mock: cancelUpstream(calls)}), calls: calls}
	for range cancelWorkers {
		f.e.startChild(t, childOpts{concurrent: cancelConcurrency, extra: sweepFast})
	}
	f.api = f.e.apiClient()
	f.api.waitServed(t)
	return f
}

// cancelRun is what one cancel measured.
type cancelRun struct {
	reply    time.Time     // when the cancel reply arrived
	rtt      time.Duration // cancel request sent → reply
	quiet    time.Duration // cancel reply → no call of the batch in flight (0 if none was left at the reply)
	fromSent time.Duration // cancel request sent → no call of the batch in flight
	inFlight int           // the batch's calls in flight just before the cancel
	results  uint64        // result lines out just before the cancel
}

// cancelMidRun creates batch id of n requests over the API, publishes
// them, waits until calls are in flight and results have come, cancels the
// batch over the API and waits (at most cancelBound) until no call of the
// batch is in flight.
func (f *cancelFleet) cancelMidRun(t testing.TB, id string, n int) ([]*lifecycle.Request, cancelRun) {
	t.Helper()
	e := f.e
	f.api.create(t, id, n, "24h")
	reqs := batchRequests(id, cancelModel, n, time.Time{})
	e.publish(t, reqs)
	waitFor(t, time.Minute, "calls in flight and results out", func() bool {
		in, _ := f.calls.now(id)
		return in >= cancelWorkers*cancelConcurrency*9/10 && e.resultCount(t, id) >= 100
	})
	var run cancelRun
	run.inFlight, _ = f.calls.now(id)
	run.results = e.resultCount(t, id)
	sent := time.Now()
	b := f.api.cancel(t, id)
	run.reply = time.Now()
	run.rtt = run.reply.Sub(sent)
	require.Contains(t, []string{string(lifecycle.BatchCancelling), string(lifecycle.BatchCancelled)}, b.Status)

	pollEvery(t, time.Millisecond, cancelBound, "no call of "+id+" in flight", func() bool {
		in, _ := f.calls.now(id)
		return in == 0
	})
	_, zeroAt := f.calls.now(id)
	run.quiet = max(zeroAt.Sub(run.reply), 0)
	run.fromSent = zeroAt.Sub(sent)
	return reqs, run
}

// Three worker processes, 5,000 requests, 450 calls in flight against an
// upstream that takes 2–5 s: batch.cancel over NATS takes every call of
// the batch off the upstream within a second of the reply, and none starts
// after it. The batch ends cancelled with exactly one cancelled event
// (counted on a core subscription, which sees a repeat the stream would
// drop); its counters add up to 5,000 and the RESULTS stream holds exactly
// one result line per request.
func TestBatchCancelOverTheAPIStopsEveryCallOfTheBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	// Not parallel: three worker processes with 450 calls in flight.
	const (
		id = "b-cancel"
		n  = 5000
	)
	f := newCancelFleet(t)
	events := f.e.countEvents(t, id)
	reqs, run := f.cancelMidRun(t, id, n)
	t.Logf("cancelled with %d calls in flight and %d results out; no call in flight %s after the reply",
		run.inFlight, run.results, run.quiet)

	// A second after the reply: still nothing in flight, nothing started.
	holdsFor(t, time.Until(run.reply.Add(cancelBound)), func() {
		in, _ := f.calls.now(id)
		require.Zero(t, in, "calls of the batch in flight after the cancel")
	})
	require.Zero(t, f.calls.startedAfter(id, run.reply), "calls of the batch started after the cancel reply")
	require.Zero(t, f.e.mock.Concurrent(cancelModel), "the mock's own count of calls in flight")

	b := f.api.waitFinal(t, id, time.Minute)
	require.Equal(t, string(lifecycle.BatchCancelled), b.Status)
	requireCountsAddUp(t, b, n)
	require.Positive(t, b.Salvo.Counts.Completed, "calls finished before the cancel keep their results")
	require.Positive(t, b.Salvo.Counts.Canceled)
	require.Equal(t, int64(n), b.Salvo.ResultsPublished)
	require.Zero(t, b.Salvo.ResultsMissing)
	require.Zero(t, f.calls.startedAfter(id, run.reply), "calls of the batch started after the cancel reply")

	results := requireOneResultLine(t, f.e, id, reqs)
	byState := map[lifecycle.State]int64{}
	for _, r := range results {
		byState[r.State]++
		if r.State == lifecycle.StateCanceled {
			require.NotNil(t, r.Error, r.ID)
			require.Equal(t, lifecycle.CodeBatchCanceled, r.Error.Code, r.ID)
		}
	}
	require.Equal(t, b.Salvo.Counts.Completed, byState[lifecycle.StateCompleted], "completed results against the counter")
	require.Equal(t, b.Salvo.Counts.Canceled, byState[lifecycle.StateCanceled], "canceled results against the counter")
	events.requireOnce(t, id, lifecycle.EventCancelled, 2*time.Second)
}

// BenchmarkCancel measures, over -benchtime rounds, the time from the
// batch.cancel reply until the mock upstream has no call of the batch in
// flight: three worker processes (concurrency 150 each), 2,000 requests a
// round against an upstream that takes 2–5 s, the cancel once ~450 calls
// are in flight. It reports p50, p99 and max in milliseconds (make
// bench-cancel; the goal is p99 ≤ 100 ms), and p50 and p99 of the same
// time counted from when the cancel request was sent.
func BenchmarkCancel(b *testing.B) {
	const n = 5000
	f := newCancelFleet(b)
	var quiet, fromSent []time.Duration
	var rounds []string
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ResetTimer()
	for round := range b.N {
		id := "b-cancel-bench-" + strconv.Itoa(round)
		_, run := f.cancelMidRun(b, id, n)
		quiet = append(quiet, run.quiet)
		fromSent = append(fromSent, run.fromSent)
		late := f.calls.startedAfter(id, run.reply)
		rounds = append(rounds, fmt.Sprintf("%d/%.1f/%.1f/%.1f", run.inFlight, ms(run.rtt), ms(run.quiet), ms(run.fromSent)))
		require.Zero(b, late, "calls started after the cancel reply")
		final := f.api.waitFinal(b, id, time.Minute)
		require.Equal(b, string(lifecycle.BatchCancelled), final.Status)
	}
	b.StopTimer()
	// One line: the testing package keeps ten lines of a benchmark's log.
	b.Logf("b.N = %d, by round in flight/reply ms/quiet after the reply ms/quiet after the request ms: %s",
		b.N, strings.Join(rounds, " "))
	slices.Sort(quiet)
	slices.Sort(fromSent)
	b.ReportMetric(ms(pct(quiet, 50)), "p50-ms")
	b.ReportMetric(ms(pct(quiet, 99)), "p99-ms")
	b.ReportMetric(ms(quiet[len(quiet)-1]), "max-ms")
	b.ReportMetric(ms(pct(fromSent, 50)), "sent-p50-ms")
	b.ReportMetric(ms(pct(fromSent, 99)), "sent-p99-ms")
}
