package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
)

// Recovery and heartbeat-cost benchmarks (make bench-recovery). Both run
// real cmd/worker processes at the shipped defaults of streams.ack_wait,
// lease.ttl and heartbeat_interval; one op is one whole scenario, so run
// them with -test.benchtime 1x (and -test.count for several rounds).

// callStarts records when the mock upstream started each call, by request id.
type callStarts struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (c *callStarts) hook(_ *http.Request, id, _ string) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at[id] = append(c.at[id], now)
}

// second is the start of the id's second call, if there was one.
func (c *callStarts) second(id string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.at[id]; len(s) >= 2 {
		return s[1], true
	}
	return time.Time{}, false
}

// defaultTimingsEnv is an env whose consumers are provisioned with the
// default AckWait, as a fleet at the defaults would create them.
func defaultTimingsEnv(b *testing.B, mock mockupstream.Options) *env {
	b.Helper()
	return newEnv(b, envOpts{mock: mock, ackWait: queue.AckWaitDefault, leaseTTL: state.LeaseTTLDefault})
}

// BenchmarkRecovery SIGKILLs the worker holding the in-flight requests of a
// batch and measures, for each request it held, the time from the kill to
// the start of the request's next upstream call on the other worker. It
// reports p50, p99 and max of that time in seconds.
//
// Two workers (concurrency 300 each, so recovery never waits for a slot),
// 200 requests, the upstream answering after 8 s. The kill comes 1–3 s
// after every call is in flight, at a varying point of the heartbeat cycle.
func BenchmarkRecovery(b *testing.B) {
	const (
		n       = 200
		latency = 8 * time.Second
	)
	calls := &callStarts{at: map[string][]time.Time{}}
	e := defaultTimingsEnv(b, mockupstream.Options{
		Script:    mockupstream.Script{Latency: &mockupstream.Latency{Min: latency, Max: latency}},
		OnRequest: calls.hook,
	})
	workers := []*child{
		e.startChild(b, childOpts{defaults: true, concurrent: 300}),
		e.startChild(b, childOpts{defaults: true, concurrent: 300}),
	}
	var all []time.Duration
	b.ResetTimer()
	for round := range b.N {
		batch := "b-recovery-" + strconv.Itoa(round)
		reqs := e.newBatch(b, batch, "gpt-4o", n, time.Hour)
		e.publish(b, reqs)
		waitFor(b, time.Minute, "every call in flight", func() bool { return e.mock.Concurrent("gpt-4o") == n })
		pause(b, time.Second+time.Duration(round%3)*700*time.Millisecond)

		// The victim is the worker that holds the most requests.
		held := map[int][]string{}
		for _, r := range reqs {
			owner := e.record(b, r).Owner
			for i, w := range workers {
				if strings.Contains(owner, "-"+strconv.Itoa(w.cmd.Process.Pid)+"-") {
					held[i] = append(held[i], r.ID)
				}
			}
		}
		victim := 0
		if len(held[1]) > len(held[0]) {
			victim = 1
		}
		ids := held[victim]
		require.NotEmpty(b, ids)
		workers[victim].signal(b, syscall.SIGKILL)
		killed := time.Now()
		_ = workers[victim].wait(b, 10*time.Second)

		var took []time.Duration
		waitFor(b, time.Minute, "every held request running again", func() bool {
			took = took[:0]
			for _, id := range ids {
				at, ok := calls.second(id)
				if !ok {
					return false
				}
				took = append(took, at.Sub(killed))
			}
			return true
		})
		all = append(all, took...)
		slices.Sort(took)
		b.Logf("round %d: killed the worker holding %d of %d requests; running again after p50 %.2fs p99 %.2fs max %.2fs",
			round, len(ids), n, pct(took, 50).Seconds(), pct(took, 99).Seconds(), took[len(took)-1].Seconds())
		e.waitResults(b, batch, n, time.Minute)
		workers[victim] = e.startChild(b, childOpts{defaults: true, concurrent: 300})
	}
	b.StopTimer()
	slices.Sort(all)
	b.ReportMetric(pct(all, 50).Seconds(), "p50-s")
	b.ReportMetric(pct(all, 99).Seconds(), "p99-s")
	b.ReportMetric(all[len(all)-1].Seconds(), "max-s")
	b.ReportMetric(float64(len(all))/float64(b.N), "held/op")
}

// BenchmarkHeartbeatCost holds 10,000 calls in flight across two workers
// (concurrency 5,000 each, the upstream answering after 40 s) and measures
// over a 10 s window what keeping them alive costs: messages per second
// into and out of the NATS server, and Redis commands per second by
// command. Nothing else happens in the window, so the rates are the
// heartbeat's (plus the idle fetch loops' pull requests).
func BenchmarkHeartbeatCost(b *testing.B) {
	const (
		n       = 10_000
		latency = 40 * time.Second
		window  = 10 * time.Second
	)
	e := defaultTimingsEnv(b, mockupstream.Options{
		Script: mockupstream.Script{Latency: &mockupstream.Latency{Min: latency, Max: latency}},
	})
	for range 2 {
		e.startChild(b, childOpts{defaults: true, concurrent: n / 2})
	}
	b.ResetTimer()
	for round := range b.N {
		batch := "b-cost-" + strconv.Itoa(round)
		reqs := e.newBatch(b, batch, "gpt-4o", n, time.Hour)
		e.publish(b, reqs)
		waitFor(b, latency/2, "every call in flight", func() bool { return e.mock.Concurrent("gpt-4o") == n })
		v0, err := e.nats.Server().Varz(nil)
		require.NoError(b, err)
		r0 := e.commandStats(b)
		start := time.Now()
		pause(b, window)
		v1, err := e.nats.Server().Varz(nil)
		require.NoError(b, err)
		r1 := e.commandStats(b)
		secs := time.Since(start).Seconds()
		require.Equal(b, n, e.mock.Concurrent("gpt-4o"), "no call ended inside the window")

		var total int64
		var by []string
		for cmd, c := range r1 {
			if d := c - r0[cmd]; d > 0 {
				total += d
				by = append(by, fmt.Sprintf("%s %.0f/s", cmd, float64(d)/secs))
			}
		}
		slices.Sort(by)
		b.ReportMetric(float64(v1.InMsgs-v0.InMsgs)/secs, "nats-in-msgs/s")
		b.ReportMetric(float64(v1.OutMsgs-v0.OutMsgs)/secs, "nats-out-msgs/s")
		b.ReportMetric(float64(total)/secs, "redis-cmds/s")
		b.Logf("round %d: %d in flight; redis by command: %s", round, n, strings.Join(by, ", "))
		e.waitResults(b, batch, n, 2*latency)
	}
}

// commandStats is Redis's INFO commandstats: calls by command name.
func (e *env) commandStats(b *testing.B) map[string]int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := e.redis.Client.Info(ctx, "commandstats").Result()
	require.NoError(b, err)
	calls := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				c, err := strconv.ParseInt(v, 10, 64)
				require.NoError(b, err)
				calls[strings.TrimPrefix(name, "cmdstat_")] = c
			}
		}
	}
	return calls
}

// pct is the p-th percentile of sorted durations (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// pause waits for d without time.Sleep.
func pause(b *testing.B, d time.Duration) {
	b.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}
