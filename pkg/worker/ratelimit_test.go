package worker_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
	"github.com/salvo-run/salvo/pkg/worker"
)

// A budget of two requests a minute and a batch due in 20 s: two calls go
// out, and the other requests, whose budget comes back only after their
// cutoff, end rate_limited_deadline at once, without a call.
func TestNoBudgetBeforeTheDeadlineFailsWithoutACall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Record: true}})
	reqs := e.newBatch(t, "b-budget", "gpt-4o", 5, 20*time.Second)
	cfg := worker.Config{
		Retry:      lifecycle.RetryPolicy{StopBeforeDeadline: time.Second},
		RateLimits: ratelimit.Config{Budgets: map[string]ratelimit.Budget{"gpt-4o": {RequestsPerMinute: 2}}},
	}
	e.startWorker(t, workerOpts{cfg: cfg})
	e.publish(t, reqs)

	results := e.waitResults(t, "b-budget", len(reqs), time.Minute)
	var completed, limited int
	for _, r := range reqs {
		res := results[r.ID]
		switch res.State {
		case lifecycle.StateCompleted:
			completed++
			require.Len(t, e.mock.Received(r.ID), 1)
		case lifecycle.StateFailed:
			limited++
			require.Equal(t, lifecycle.CodeRateLimitedDeadline, res.Error.Code, res.Error.Message)
			require.Empty(t, e.mock.Received(r.ID), "failed without a call")
			require.Zero(t, e.record(t, r).Attempt, "no attempt counted for a call never made")
		default:
			t.Fatalf("%s ended %s", r.ID, res.State)
		}
	}
	require.Equal(t, 2, completed)
	require.Equal(t, 3, limited)
	require.EqualValues(t, 2, e.mock.Calls())
	require.Equal(t, lifecycle.Counts{Total: 5, Completed: 2, Failed: 3}, e.batch(t, "b-budget").Counts)
}

// Nothing is configured, and the upstream sends no limit headers: the
// first thing the fleet learns of the budget is one worker's 429 with
// Retry-After 30 s. Its hold event makes the other worker ask the budget
// store too, so no worker calls again during the hold: the later requests,
// due before the hold ends, fail rate_limited_deadline without a call.
func TestOneWorkersHoldStopsEveryWorkersCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Record: true}})
	reqs := e.newBatch(t, "b-hold", "gpt-4o", 7, 20*time.Second)
	e.mock.Script(reqs[0].ID, mockupstream.Script{
		Sequence: []int{http.StatusTooManyRequests},
		Failures: &mockupstream.FailureMix{RetryAfter: 30 * time.Second},
	})
	cfg := worker.Config{Retry: lifecycle.RetryPolicy{StopBeforeDeadline: time.Second}}
	workers := []*worker.Worker{e.startWorker(t, workerOpts{cfg: cfg}), e.startWorker(t, workerOpts{cfg: cfg})}

	e.publish(t, reqs[:1])
	waitFor(t, 30*time.Second, "both workers to know the hold", func() bool {
		for _, w := range workers {
			held := false
			for _, k := range w.Limits() {
				held = held || (k.Model == "gpt-4o" && k.Budgeted)
			}
			if !held {
				return false
			}
		}
		return true
	})
	e.publish(t, reqs[1:])

	results := e.waitResults(t, "b-hold", len(reqs), time.Minute)
	require.EqualValues(t, 1, e.mock.Calls(), "one call, the 429: none during the hold")
	for _, r := range reqs[1:] {
		require.Equal(t, lifecycle.StateFailed, results[r.ID].State)
		require.Equal(t, lifecycle.CodeRateLimitedDeadline, results[r.ID].Error.Code, results[r.ID].Error.Message)
	}
	require.Equal(t, lifecycle.StateFailed, results[reqs[0].ID].State, "its retry would start after the cutoff")
	require.Equal(t, lifecycle.Counts{Total: 7, Failed: 7}, e.batch(t, "b-hold").Counts)
}
