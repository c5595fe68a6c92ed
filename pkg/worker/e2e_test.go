package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

// A batch of 1,000 requests against an upstream that answers 429, 500 or
// resets the connection for a fifth of the calls ends with every request
// completed, exact counters, one result per request and one batch event.
func TestBatchUnderUpstreamFailuresEndsExactlyOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	e := newEnv(t, envOpts{mock: mockupstream.Options{Seed: 7, Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: time.Millisecond, Max: 5 * time.Millisecond},
		Failures: &mockupstream.FailureMix{
			RateLimited: 0.07, RetryAfter: time.Second, ServerError: 0.07, Reset: 0.06,
		},
	}}})
	const n = 1000
	reqs := e.newBatch(t, "b-chaos", "gpt-4o", n, time.Hour)
	e.startWorker(t, workerOpts{})
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs)

	results := e.waitResults(t, "b-chaos", n, 3*time.Minute)
	for _, r := range reqs {
		res := results[r.ID]
		require.NotNil(t, res, r.ID)
		require.Equal(t, lifecycle.StateCompleted, res.State, "%s: %+v", r.ID, res.Error)
		require.Equal(t, http.StatusOK, res.Response.StatusCode)
		require.Equal(t, r.CustomID, res.CustomID)
		require.Contains(t, string(res.Response.Body), "chat.completion")
	}
	waitFor(t, 10*time.Second, "batch finalized", func() bool { return e.batch(t, "b-chaos").Status == lifecycle.BatchCompleted })
	b := e.batch(t, "b-chaos")
	require.Equal(t, lifecycle.Counts{Total: n, Completed: n}, b.Counts)
	waitFor(t, 5*time.Second, "batch event", func() bool { return e.batchEvents(t, "b-chaos") >= 1 })
	require.Equal(t, uint64(1), e.batchEvents(t, "b-chaos"), "exactly one batch event")
	require.Greater(t, e.mock.Calls(), int64(n), "the failure mix made the worker retry")
}

// The processing record is durable before the upstream sees the call.
func TestProcessingIsDurableBeforeTheUpstreamCall(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		seen   = map[string]lifecycle.State{}
		owners = map[string]string{}
		e      *env
	)
	e = newEnv(t, envOpts{mock: mockupstream.Options{OnRequest: func(_ *http.Request, id, _ string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rec, err := e.store.Request(ctx, lifecycle.Ref{ID: id, BatchID: "b-durable"})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			seen[id] = "error: " + lifecycle.State(err.Error())
			return
		}
		seen[id] = rec.State
		owners[id] = rec.Owner
	}}})
	reqs := e.newBatch(t, "b-durable", "gpt-4o", 20, time.Hour)
	w := e.startWorker(t, workerOpts{})
	e.publish(t, reqs)
	e.waitResults(t, "b-durable", len(reqs), time.Minute)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, len(reqs))
	for id, st := range seen {
		require.Equal(t, lifecycle.StateProcessing, st, "record of %s when the upstream saw it", id)
		require.Equal(t, w.ID(), owners[id])
	}
}

// With a short window and an upstream that always answers 503, requests
// end failed with the last status kept, and no attempt starts at or after
// expires_at − stop_before_deadline.
func TestDeadlineEndsRetriesWithTheLastStatus(t *testing.T) {
	// Not parallel: the upstream's arrival times are compared with the
	// cutoff, and parallel tests on two cores delay calls in transit.
	e := newEnv(t, envOpts{mock: mockupstream.Options{Record: true, Script: mockupstream.Script{
		Failures: &mockupstream.FailureMix{Unavailable: 1},
	}}})
	const stopBefore = time.Second
	reqs := e.newBatch(t, "b-deadline", "gpt-4o", 5, 3*time.Second)
	cfg := worker.Config{Retry: lifecycle.RetryPolicy{
		Backoff: 150 * time.Millisecond, BackoffFactor: 2, MaxBackoff: time.Second, StopBeforeDeadline: stopBefore,
	}}
	e.startWorker(t, workerOpts{cfg: cfg})
	e.publish(t, reqs)

	results := e.waitResults(t, "b-deadline", len(reqs), time.Minute)
	cutoff := reqs[0].ExpiresAt.Add(-stopBefore)
	for _, r := range reqs {
		res := results[r.ID]
		require.Equal(t, lifecycle.StateFailed, res.State)
		require.Equal(t, lifecycle.CodeRetriableStatus, res.Error.Code)
		require.Contains(t, res.Error.Message, "deadline")
		require.NotNil(t, res.Response)
		require.Equal(t, http.StatusServiceUnavailable, res.Response.StatusCode, "the last status is kept")
		rec := e.record(t, r)
		require.Equal(t, lifecycle.StateFailed, rec.State)
		require.Equal(t, http.StatusServiceUnavailable, rec.Status)

		calls := e.mock.Received(r.ID)
		require.GreaterOrEqual(t, len(calls), 2, "retried before the deadline")
		require.Equal(t, len(calls), res.Attempts)
		// The worker decides at the cutoff exactly (the deterministic
		// TestRetryArrivingAfterTheCutoffFailsWithTheLastStatus); the mock
		// stamps the call on arrival, after the client's transport, so
		// arrivals get a margin for a loaded machine — far below the
		// backoff, so a retry started past the cutoff still fails this.
		const inTransit = 100 * time.Millisecond
		for i, c := range calls {
			require.True(t, c.At.Before(cutoff.Add(inTransit)), "attempt %d of %s arrived %s after the cutoff", i, r.ID, c.At.Sub(cutoff))
		}
	}
	b := e.batch(t, "b-deadline")
	require.Equal(t, lifecycle.Counts{Total: 5, Failed: 5}, b.Counts)
	require.Equal(t, lifecycle.BatchFailed, b.Status)
}

// Three workers share a fleet-wide limit for one model: the upstream never
// sees more concurrent calls than the limit.
func TestFleetWideModelLimitHoldsAcrossWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 40 * time.Millisecond, Max: 60 * time.Millisecond},
	}}})
	const limit = 3
	reqs := e.newBatch(t, "b-global", "gpt-4o", 60, time.Hour)
	cfg := worker.Config{Concurrency: worker.Concurrency{Default: 8, Global: map[string]int{"gpt-4o": limit}}}
	for range 3 {
		e.startWorker(t, workerOpts{cfg: cfg})
	}
	e.publish(t, reqs)
	e.waitResults(t, "b-global", len(reqs), time.Minute)
	require.LessOrEqual(t, e.mock.MaxConcurrent("gpt-4o"), limit)
	require.Equal(t, lifecycle.Counts{Total: 60, Completed: 60}, e.batch(t, "b-global").Counts)
}

// The per-pod limit holds, and a runtime change takes effect without a
// restart.
func TestPerPodLimitAndRuntimeChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 80 * time.Millisecond, Max: 100 * time.Millisecond},
	}}})
	cfg := worker.Config{Concurrency: worker.Concurrency{Default: 2}}
	w := e.startWorker(t, workerOpts{cfg: cfg})

	first := e.newBatch(t, "b-limit-1", "gpt-4o", 20, time.Hour)
	e.publish(t, first)
	e.waitResults(t, "b-limit-1", len(first), time.Minute)
	require.Equal(t, 2, e.mock.MaxConcurrent("gpt-4o"), "the limit is reached and never exceeded")

	require.NoError(t, w.Reconfigure(lifecycle.RetryPolicy{Backoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		worker.Concurrency{Default: 2, Models: map[string]int{"gpt-4o": 5}}))
	second := e.newBatch(t, "b-limit-2", "gpt-4o", 40, time.Hour)
	e.publish(t, second)
	e.waitResults(t, "b-limit-2", len(second), time.Minute)
	max := e.mock.MaxConcurrent("gpt-4o")
	require.Greater(t, max, 2, "the raised limit took effect")
	require.LessOrEqual(t, max, 5, "the new limit is never exceeded")
}

// A batchless request published by any client is processed: its record is
// created on first claim and its result goes to its result_subject and to
// the default results subject.
func TestBatchlessRequestWithResultSubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.startWorker(t, workerOpts{})
	nc := e.nats.Connect()
	got := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe("client.inbox.r1", got)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())

	req := &lifecycle.Request{
		V: lifecycle.WireVersion, ID: "solo-1", Model: "gpt-4o-mini", Method: "POST", URL: "/v1/chat/completions",
		Body: []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`), ExpiresAt: time.Now().Add(time.Hour),
		ResultSubject: "client.inbox.r1", Metadata: map[string]string{"team": "search"},
	}
	e.publish(t, []*lifecycle.Request{req})

	select {
	case m := <-got:
		var res lifecycle.Result
		require.NoError(t, json.Unmarshal(m.Data, &res))
		require.Equal(t, "solo-1", res.ID)
		require.Equal(t, lifecycle.StateCompleted, res.State)
	case <-time.After(30 * time.Second):
		t.Fatal("no result on the request's result_subject")
	}
	e.waitResults(t, "", 1, 10*time.Second)
	rec := e.record(t, req)
	require.Equal(t, lifecycle.StateCompleted, rec.State)
}

// A model no route serves ends failed with unrouted_model; routed models in
// the same batch are unaffected.
func TestUnroutedModelFailsClearly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	hc := httpclient.Config{Routes: map[string]httpclient.Route{"gpt-4o": {BaseURL: e.mock.URL()}}}
	e.startWorker(t, workerOpts{http: &hc})
	reqs := e.newBatch(t, "b-route", "gpt-4o", 4, time.Hour)
	reqs[3].Model = "mystery/model:v1"
	reqs[3].Body = []byte(`{"model":"mystery/model:v1","messages":[]}`) // body.model must agree
	e.publish(t, reqs)

	results := e.waitResults(t, "b-route", 4, 30*time.Second)
	for _, r := range reqs[:3] {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State)
	}
	bad := results[reqs[3].ID]
	require.Equal(t, lifecycle.StateFailed, bad.State)
	require.Equal(t, lifecycle.CodeUnroutedModel, bad.Error.Code)
	require.Contains(t, bad.Error.Message, "mystery/model:v1")
	require.Equal(t, lifecycle.Counts{Total: 4, Completed: 3, Failed: 1}, e.batch(t, "b-route").Counts)
	require.Zero(t, e.mock.CallsFor(reqs[3].ID), "nothing was sent upstream for the unrouted model")
}

// Every log line about a request names it (request_id, batch_id, model,
// attempt once claimed), and no line carries the API key.
func TestLogsNameTheRequestAndNeverTheKey(t *testing.T) {
	t.Parallel()
	const key = "sk-live-DO-NOT-LOG-0123456789"
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{Sequence: []int{429, 500, 200}}}})
	logs := &testlog.Buffer{}
	hc := httpclient.Config{Default: &httpclient.Route{BaseURL: e.mock.URL(), APIKey: httpclient.Secret(key)}}
	e.startWorker(t, workerOpts{http: &hc, logOut: logs})
	reqs := e.newBatch(t, "b-logs", "gpt-4o", 3, time.Hour)
	e.publish(t, reqs)
	e.waitResults(t, "b-logs", 3, 30*time.Second)

	out := logs.String()
	require.NotContains(t, out, key)
	require.NotContains(t, out, "Bearer")
	var aboutRequests int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if _, ok := m["request_id"]; !ok {
			continue
		}
		aboutRequests++
		for _, f := range []string{"batch_id", "model"} {
			require.Contains(t, m, f, "line %s", line)
		}
		if msg := fmt.Sprint(m["message"]); strings.Contains(msg, "retry scheduled") || msg == "request ended" {
			require.Contains(t, m, "attempt", "line %s", line)
		}
	}
	require.GreaterOrEqual(t, aboutRequests, 9, "three requests, each retried twice, then ended")
}

// A retry whose message comes back after expires_at − stop_before_deadline
// is not attempted: the request fails with the previous attempt's error and
// status, and nothing is sent upstream.
func TestRetryArrivingAfterTheCutoffFailsWithTheLastStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-late-retry", "gpt-4o", 1, 3*time.Second)
	req := reqs[0]
	// An earlier attempt (by a worker now gone) failed with 503 and was
	// scheduled for retry.
	c, err := e.store.Claim(bg(t), state.ClaimArgs{Request: req, Owner: "earlier-pod", Delivery: 1, Start: true})
	require.NoError(t, err)
	p, ok := c.Held.Processing(time.Now())
	require.True(t, ok)
	_, err = e.store.Retry(bg(t), p, lifecycle.NewFailure(lifecycle.CodeRetriableStatus, http.StatusServiceUnavailable, "upstream answered 503"), time.Now())
	require.NoError(t, err)

	const stopBefore = 2500 * time.Millisecond
	cutoff := req.ExpiresAt.Add(-stopBefore)
	// The worker must first see the request after the cutoff: wait for the
	// wall clock to pass it (a wait for time itself, not for a condition).
	time.Sleep(time.Until(cutoff) + 50*time.Millisecond) //nolint:forbidigo // see above
	e.startWorker(t, workerOpts{cfg: worker.Config{Retry: lifecycle.RetryPolicy{StopBeforeDeadline: stopBefore}}})
	e.publish(t, reqs)

	res := e.waitResults(t, "b-late-retry", 1, 20*time.Second)[req.ID]
	require.Equal(t, lifecycle.StateFailed, res.State)
	require.Equal(t, lifecycle.CodeRetriableStatus, res.Error.Code)
	require.Contains(t, res.Error.Message, "deadline")
	require.NotNil(t, res.Response)
	require.Equal(t, http.StatusServiceUnavailable, res.Response.StatusCode, "the last status is kept")
	require.Zero(t, e.mock.CallsFor(req.ID), "no attempt after the cutoff")
	require.Equal(t, 1, res.Attempts, "the earlier call, none after the cutoff")
}
