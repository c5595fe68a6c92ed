package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A worker process killed with SIGKILL mid-batch: the rest of the fleet
// finishes the batch, no request is lost, none has two terminal states or
// two results.
func TestKilledWorkerProcessLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	e := newEnv(t, envOpts{mock: mockupstream.Options{Seed: 3, Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 20 * time.Millisecond, Max: 80 * time.Millisecond},
	}}})
	const n = 400
	reqs := e.newBatch(t, "b-kill", "gpt-4o", n, time.Hour)
	victim := e.startChild(t, childOpts{concurrent: 24})
	survivor := e.startChild(t, childOpts{concurrent: 24})
	e.publish(t, reqs)

	waitFor(t, time.Minute, "a third of the batch", func() bool { return e.resultCount(t, "b-kill") >= n/3 })
	victim.signal(t, syscall.SIGKILL)
	_ = victim.wait(t, 10*time.Second)

	results := e.waitResults(t, "b-kill", n, 2*time.Minute)
	rerun := 0
	for _, r := range reqs {
		if e.mock.CallsFor(r.ID) > 1 {
			rerun++
		}
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State, r.ID)
		require.Equal(t, lifecycle.StateCompleted, e.record(t, r).State, r.ID)
	}
	require.Positive(t, rerun, "calls cut off by the kill ran again on the survivor")
	waitFor(t, 10*time.Second, "batch finalized", func() bool { return e.batch(t, "b-kill").Status == lifecycle.BatchCompleted })
	require.Equal(t, lifecycle.Counts{Total: n, Completed: n}, e.batch(t, "b-kill").Counts)
	require.Equal(t, uint64(1), e.batchEvents(t, "b-kill"))

	select {
	case <-survivor.done:
		t.Fatalf("the surviving worker exited: %v", survivor.err)
	default:
	}
}

// SIGTERM with calls in flight that outlast the grace period: the calls are
// aborted, their leases released and the messages handed back at once, so
// another worker finishes them long before AckWait or the lease would.
func TestSIGTERMHandsInFlightCallsBack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	// AckWait and lease far longer than the test's patience: only an
	// immediate hand-back lets the second worker finish in time.
	e := newEnv(t, envOpts{ackWait: time.Minute, leaseTTL: time.Minute})
	reqs := e.newBatch(t, "b-term", "gpt-4o", 6, time.Hour)
	slow := mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Minute}}
	for _, r := range reqs {
		e.mock.Script(r.ID, slow)
	}
	c := e.startChild(t, childOpts{grace: 300 * time.Millisecond, ackWait: time.Minute, leaseTTL: time.Minute})
	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "all calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == len(reqs) })

	c.signal(t, syscall.SIGTERM)
	require.NoError(t, c.wait(t, 15*time.Second), "clean exit after SIGTERM")

	for _, r := range reqs {
		rec := e.record(t, r)
		require.Equal(t, lifecycle.StatePending, rec.State, "%s handed back, nothing left claimed", r.ID)
		require.Empty(t, rec.Owner)
		require.Equal(t, 1, rec.Attempt, "a call cut by the shutdown counts as an attempt")
		e.mock.Script(r.ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Millisecond}})
	}
	e.startWorker(t, workerOpts{})
	results := e.waitResults(t, "b-term", len(reqs), 20*time.Second)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State)
		require.Equal(t, 2, results[r.ID].Attempts)
		require.Equal(t, e.mock.CallsFor(r.ID), results[r.ID].Attempts, "attempts equal the upstream calls")
	}
	require.Equal(t, lifecycle.Counts{Total: 6, Completed: 6}, e.batch(t, "b-term").Counts)
}

// SIGTERM with calls that finish inside the grace period: they complete on
// the stopping worker, each called upstream once.
func TestSIGTERMLetsShortCallsFinish(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 700 * time.Millisecond},
	}}})
	reqs := e.newBatch(t, "b-grace", "gpt-4o", 5, time.Hour)
	c := e.startChild(t, childOpts{grace: 10 * time.Second})
	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "all calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == len(reqs) })

	c.signal(t, syscall.SIGTERM)
	require.NoError(t, c.wait(t, 15*time.Second))

	results := e.waitResults(t, "b-grace", len(reqs), 5*time.Second)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State)
		require.Equal(t, 1, e.mock.CallsFor(r.ID), "finished by the stopping worker, not re-run")
	}
}

// A request that takes its worker down every time ends failed after a
// bounded number of deliveries instead of looping forever.
func TestRequestThatKeepsKillingWorkersEndsFailed(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-poison", "gpt-4o", 1, time.Hour)
	poison := reqs[0]
	e.mock.Script(poison.ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Hour}})
	e.publish(t, reqs)

	// The store allows 2 reclaims (newEnv's MaxReclaims): the first claim
	// and two reclaims each take a worker down; the next claim ends it.
	for crash := 1; crash <= 3; crash++ {
		c := e.startChild(t, childOpts{})
		waitFor(t, 30*time.Second, "the poison call in flight", func() bool { return e.mock.CallsFor(poison.ID) == crash })
		c.signal(t, syscall.SIGKILL)
		_ = c.wait(t, 10*time.Second)
	}
	e.startWorker(t, workerOpts{})
	results := e.waitResults(t, "b-poison", 1, 30*time.Second)
	res := results[poison.ID]
	require.Equal(t, lifecycle.StateFailed, res.State)
	require.Equal(t, lifecycle.CodeMaxDeliveries, res.Error.Code)
	require.Equal(t, 3, e.mock.CallsFor(poison.ID), "no fourth call")
	require.Equal(t, lifecycle.Counts{Total: 1, Failed: 1}, e.batch(t, "b-poison").Counts)
}

// SIGHUP reloads the configuration: a raised per-model limit takes effect
// in the running process without a restart.
func TestSIGHUPReloadsConcurrencyLimits(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 80 * time.Millisecond, Max: 100 * time.Millisecond},
	}}})
	c := e.startChild(t, childOpts{concurrent: 2})
	first := e.newBatch(t, "b-hup-1", "gpt-4o", 16, time.Hour)
	e.publish(t, first)
	e.waitResults(t, "b-hup-1", len(first), time.Minute)
	require.Equal(t, 2, e.mock.MaxConcurrent("gpt-4o"))

	require.NoError(t, os.WriteFile(c.config, []byte(e.childConfig(childOpts{concurrent: 5})), 0o600))
	c.signal(t, syscall.SIGHUP)
	waitFor(t, 10*time.Second, "reload logged", func() bool { return strings.Contains(c.logs.String(), "configuration reloaded") })

	second := e.newBatch(t, "b-hup-2", "gpt-4o", 40, time.Hour)
	e.publish(t, second)
	e.waitResults(t, "b-hup-2", len(second), time.Minute)
	max := e.mock.MaxConcurrent("gpt-4o")
	require.Greater(t, max, 2, "the reloaded limit took effect")
	require.LessOrEqual(t, max, 5)
}

// The worker process serves /healthz, /readyz, /metrics and /statusz
// (escalation counts); readiness reflects NATS, Redis and the fetch loops:
// it goes away within seconds when Redis or NATS does and comes back when
// they return.
func TestHealthEndpointsOfTheWorkerProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	e := newEnv(t, envOpts{})
	c := e.startChild(t, childOpts{})
	var addr string
	waitFor(t, 20*time.Second, "the health endpoint's address in the log", func() bool {
		for _, line := range strings.Split(c.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "health endpoints listening (/healthz, /readyz, /metrics)" {
				addr, _ = m["addr"].(string)
				return true
			}
		}
		return false
	})
	get := func(path string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body := get("/statusz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"escalations":{"routed":0,"started":0,"won":0,"lost":0,"wasted_calls":0}}`, body)
	waitFor(t, 10*time.Second, "ready", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })

	e.redis.Stop()
	waitFor(t, 10*time.Second, "not ready without redis", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "redis")
	})
	code, _ = get("/healthz")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on Redis")
	_, metrics := get("/metrics")
	require.Contains(t, metrics, `salvo_dependency_up{dependency="redis"} 0`, "alerts see the outage")
	require.Contains(t, metrics, `salvo_dependency_up{dependency="nats"} 1`)
	e.redis.Restart()
	waitFor(t, 20*time.Second, "ready again with redis back", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	_, metrics = get("/metrics")
	require.Contains(t, metrics, `salvo_dependency_up{dependency="redis"} 1`)

	e.nats.Shutdown()
	waitFor(t, 10*time.Second, "not ready without nats", func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "nats")
	})
	e.nats.Restart()
	waitFor(t, 30*time.Second, "ready again with nats back", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })

	// A request run by the process shows in its /metrics.
	reqs := e.newBatch(t, "b-health", "gpt-4o", 1, time.Hour)
	e.publish(t, reqs)
	e.waitResults(t, "b-health", 1, 30*time.Second)
	waitFor(t, 10*time.Second, "the request counted in /metrics", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `salvo_requests_total{model="gpt-4o",outcome="completed"} 1`)
	})
}
