package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/worker"
)

// Escalation end to end: in-process workers against a real redis-server,
// an embedded NATS server and the mock upstream, where model "slow" takes
// its time and model "fast" answers at once.
const (
	slowModel = "slow"
	fastModel = "fast"
)

// escalationEnv is an env whose mock upstream answers "slow" after slow
// and "fast" after 20 ms.
func escalationEnv(t *testing.T, slow time.Duration) *env {
	t.Helper()
	return newEnv(t, envOpts{mock: mockupstream.Options{Models: map[string]mockupstream.Script{
		slowModel: {Latency: &mockupstream.Latency{Min: slow}},
		fastModel: {Latency: &mockupstream.Latency{Min: 20 * time.Millisecond}},
	}}})
}

// escalating is a worker config that escalates "slow" to "fast" within
// threshold of the deadline, with a fast sweep.
func escalating(mode worker.EscalationMode, threshold time.Duration) worker.Config {
	return worker.Config{
		Escalations: worker.Escalations{slowModel: {Model: fastModel, Threshold: threshold, Mode: mode}},
		Batches:     worker.Batches{SweepInterval: 100 * time.Millisecond},
	}
}

// copyOf is the racing copy of req.
func copyOf(req *lifecycle.Request) *lifecycle.Request {
	cp := *req
	cp.ID, _ = lifecycle.CopyID(req.ID)
	cp.Model = fastModel
	return &cp
}

// waitBatchFinal waits until the batch is final and returns it.
func (e *env) waitBatchFinal(t *testing.T, id string, timeout time.Duration) lifecycle.Batch {
	t.Helper()
	var b lifecycle.Batch
	waitFor(t, timeout, "batch "+id+" final", func() bool {
		b = e.batch(t, id)
		return b.Status.Terminal()
	})
	return b
}

// requireEscalationRecount requires the batch's counters to equal a
// recount of its requests' records, escalating to equal the copies not
// ended, and every request to have its result counted (published =
// total: its own line, or its winning copy's).
func requireEscalationRecount(t *testing.T, e *env, reqs []*lifecycle.Request) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := reqs[0].BatchID
	c := lifecycle.Counts{Total: int64(len(reqs))}
	var escalating, published int64
	for _, r := range reqs {
		rec, err := e.store.Request(ctx, r.Ref())
		require.NoError(t, err)
		require.True(t, c.Count(rec.State), rec.State)
		key := e.prefix + ":{" + id + "}:req:"
		if v, _ := e.redis.Client.HGet(ctx, key+r.ID, "pub_counted").Result(); v == "1" {
			published++
		}
		if rec.EscalatedTo != "" {
			if v, _ := e.redis.Client.HGet(ctx, key+rec.EscalatedTo, "esc_open").Result(); v == "1" {
				escalating++
			}
		}
	}
	b := e.batch(t, id)
	require.Equal(t, c, b.Counts, "batch counters equal a recount of the records")
	require.Equal(t, escalating, b.Escalating, "escalating equals the copies not ended")
	require.Equal(t, published, b.ResultsPublished, "published equals the requests whose result was counted")
}

// The racing copy answers first: the original's slow call is aborted, the
// original ends superseded, and the RESULTS stream holds exactly one line
// for it — the copy's, with the original's id and custom_id, naming the
// escalation model. Two requests: one claimed inside the threshold (its
// copy starts at claim), one claimed outside whose copy the sweep starts
// once the batch is inside the threshold.
func TestARacingCopyThatAnswersFirstSupersedesItsOriginal(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		window, threshold time.Duration
	}{
		"at claim": {30 * time.Minute, time.Hour},
		// outside the 8 s threshold at claim (12 s left), inside 4 s later
		"by the sweep": {12 * time.Second, 8 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := escalationEnv(t, time.Minute)
			w := e.startWorker(t, workerOpts{cfg: escalating(worker.EscalateRace, c.threshold)})
			reqs := e.newBatch(t, "race", slowModel, 1, c.window)
			req := reqs[0]
			e.publish(t, reqs)
			b := e.waitBatchFinal(t, "race", 30*time.Second)
			require.Equal(t, lifecycle.BatchCompleted, b.Status)

			rec := e.record(t, req)
			require.Equal(t, lifecycle.StateSuperseded, rec.State)
			require.Equal(t, copyOf(req).ID, rec.SupersededBy)
			require.Equal(t, lifecycle.StateCompleted, e.record(t, copyOf(req)).State)
			lines := e.resultMessages(t, req.BatchID)
			require.Len(t, lines, 1, "one request id on the stream")
			require.Len(t, lines[req.ID], 1, "exactly one raw line for the original")
			l := lines[req.ID][0]
			require.Equal(t, lifecycle.StateCompleted, l.State)
			require.Equal(t, req.CustomID, l.CustomID)
			require.Equal(t, slowModel, l.Model)
			require.Equal(t, fastModel, l.RoutedModel)
			require.Equal(t, copyOf(req).ID, l.EscalationID)
			requireEscalationRecount(t, e, reqs)

			// the abort reaches the mock before the aborted handler counts
			// its wasted call
			want := worker.EscalationStats{Started: 1, Won: 1, WastedCalls: 1}
			waitFor(t, 10*time.Second, "the original's slow call aborted and counted", func() bool {
				return e.mock.Concurrent(slowModel) == 0 && w.EscalationStats() == want
			})
			require.Equal(t, 1, e.mock.CallsForModel(slowModel))
			require.Equal(t, 1, e.mock.CallsForModel(fastModel))
		})
	}
}

// A failure never wins: the copy fails (400), the original completes and
// its result stands — one line, the slow model's; the failed copy
// publishes nothing.
func TestAFailedCopyLeavesTheOriginalsResultStanding(t *testing.T) {
	t.Parallel()
	e := escalationEnv(t, 500*time.Millisecond)
	e.startWorker(t, workerOpts{cfg: escalating(worker.EscalateRace, time.Hour)})
	reqs := e.newBatch(t, "copy-fails", slowModel, 1, 30*time.Minute)
	e.mock.SetSequence(copyOf(reqs[0]).ID, 400)
	e.publish(t, reqs)
	b := e.waitBatchFinal(t, "copy-fails", 30*time.Second)
	require.Equal(t, lifecycle.BatchCompleted, b.Status)

	require.Equal(t, lifecycle.StateFailed, e.record(t, copyOf(reqs[0])).State)
	require.Equal(t, lifecycle.StateCompleted, e.record(t, reqs[0]).State)
	lines := e.resultMessages(t, "copy-fails")
	require.Len(t, lines, 1)
	require.Len(t, lines[reqs[0].ID], 1)
	l := lines[reqs[0].ID][0]
	require.Equal(t, lifecycle.StateCompleted, l.State)
	require.Equal(t, slowModel, l.RoutedModel)
	require.Empty(t, l.EscalationID)
	requireEscalationRecount(t, e, reqs)
}

// The original fails and its line is published; then its copy completes
// and overturns it: the stream holds the failure and the copy's completed
// line (a distinct Nats-Msg-Id), the batch counts the original once and
// completes, and an output file built by the one-line-per-custom_id rule
// has the completed line alone.
func TestACopyCompletingAfterThePublishedFailureReplacesIt(t *testing.T) {
	t.Parallel()
	e := escalationEnv(t, 0)
	e.startWorker(t, workerOpts{cfg: escalating(worker.EscalateRace, time.Hour)})
	reqs := e.newBatch(t, "orig-fails", slowModel, 1, 30*time.Minute)
	e.mock.SetSequence(reqs[0].ID, 400)
	// the copy answers only once the original's failure line is out
	e.mock.Script(copyOf(reqs[0]).ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: 2 * time.Second}})
	e.publish(t, reqs)
	waitFor(t, 10*time.Second, "the original's failure line", func() bool { return e.resultCount(t, "orig-fails") == 1 })
	require.Equal(t, lifecycle.BatchFinalizing, e.batch(t, "orig-fails").Status, "the batch waits for the copy")
	b := e.waitBatchFinal(t, "orig-fails", 30*time.Second)
	require.Equal(t, lifecycle.BatchCompleted, b.Status)

	require.Equal(t, lifecycle.StateSuperseded, e.record(t, reqs[0]).State)
	lines := e.resultMessages(t, "orig-fails")[reqs[0].ID]
	require.Len(t, lines, 2, "the failure, then the copy's completed line")
	require.Equal(t, lifecycle.StateFailed, lines[0].State)
	require.Equal(t, lifecycle.StateCompleted, lines[1].State)
	require.Equal(t, fastModel, lines[1].RoutedModel)
	require.True(t, lifecycle.ReplacesLine(&lines[0], &lines[1]), "the output files keep the completed line")
	require.Equal(t, int64(1), b.ResultsPublished)
	requireEscalationRecount(t, e, reqs)
}

// Route at claim: the requests claimed inside the threshold are sent to
// the escalation model (body model rewritten, routed_model recorded), the
// others are not — counted at the mock per model.
func TestRouteAtClaimSendsOnlyTheRequestsInsideTheThresholdToTheEscalationModel(t *testing.T) {
	t.Parallel()
	e := escalationEnv(t, 10*time.Millisecond)
	mp, scrape := newScrapedMeter(t)
	w := e.startWorker(t, workerOpts{cfg: escalating(worker.EscalateRoute, time.Hour), meter: mp})
	near := e.newBatch(t, "near", slowModel, 5, 30*time.Minute)
	far := e.newBatch(t, "far", slowModel, 7, 24*time.Hour)
	e.publish(t, append(append([]*lifecycle.Request{}, near...), far...))
	for id, want := range map[string]string{"near": fastModel, "far": slowModel} {
		res := e.waitResults(t, id, map[string]int{"near": 5, "far": 7}[id], 30*time.Second)
		for _, r := range res {
			require.Equal(t, lifecycle.StateCompleted, r.State)
			require.Equal(t, slowModel, r.Model)
			require.Equal(t, want, r.RoutedModel, r.ID)
			require.Empty(t, r.EscalationID)
		}
	}
	require.Equal(t, 5, e.mock.CallsForModel(fastModel))
	require.Equal(t, 7, e.mock.CallsForModel(slowModel))
	require.Equal(t, fastModel, e.record(t, near[0]).RoutedModel)
	require.Equal(t, slowModel, e.record(t, far[0]).RoutedModel)
	require.Equal(t, int64(5), w.EscalationStats().Routed)
	m := scrape()
	require.InDelta(t, 5, m[`salvo_escalations_total{outcome="routed"}`], 0, "/metrics serves the escalation counts")
	require.InDelta(t, 0, m[`salvo_escalations_total{outcome="started"}`], 0)
	// upstream calls are labelled with the model called
	require.InDelta(t, 5, m[`salvo_upstream_duration_seconds_count{model="`+fastModel+`",status="2xx"}`], 0)
	requireEscalationRecount(t, e, near)
	requireEscalationRecount(t, e, far)
}

// Routed at claim, a request is limited by the escalation model's
// fleet-wide slots, not by the requested model's.
func TestRouteAtClaimTakesTheEscalationModelsFleetWideSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Models: map[string]mockupstream.Script{
		fastModel: {Latency: &mockupstream.Latency{Min: 300 * time.Millisecond}},
	}}})
	cfg := escalating(worker.EscalateRoute, time.Hour)
	cfg.Concurrency.Global = map[string]int{slowModel: 100, fastModel: 2}
	e.startWorker(t, workerOpts{cfg: cfg})
	reqs := e.newBatch(t, "fleet", slowModel, 12, 30*time.Minute)
	e.publish(t, reqs)
	for _, r := range e.waitResults(t, "fleet", 12, time.Minute) {
		require.Equal(t, fastModel, r.RoutedModel)
	}
	require.Equal(t, 12, e.mock.CallsForModel(fastModel))
	require.LessOrEqual(t, e.mock.MaxConcurrent(fastModel), 2, "the escalation model's fleet-wide limit")
	requireEscalationRecount(t, e, reqs)
}

// A superseded request publishes no line of its own, whoever finds it
// superseded: here no supersede event comes (Redis alone says so), so the
// heartbeat finds the lease lost, the call is cut, and the redelivery's
// claim finds the request superseded — it acks without a line.
func TestASupersededRequestFoundByItsRedeliveryPublishesNoLine(t *testing.T) {
	t.Parallel()
	e := escalationEnv(t, time.Minute)
	e.startWorker(t, workerOpts{})
	reqs := e.newBatch(t, "silent", slowModel, 2, time.Hour)
	e.publish(t, reqs)
	waitFor(t, 10*time.Second, "the calls in flight", func() bool { return e.mock.Concurrent(slowModel) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := e.store.Supersede(ctx, reqs[0].Ref(), copyOf(reqs[0]).ID)
	require.NoError(t, err)
	require.True(t, tr.Applied)
	waitFor(t, 30*time.Second, "the superseded request's message acked", func() bool {
		return e.mock.Concurrent(slowModel) == 1 && e.record(t, reqs[0]).Published
	})
	require.Zero(t, e.resultCount(t, "silent"), "no line for the superseded request")
	require.Equal(t, lifecycle.StateProcessing, e.record(t, reqs[1]).State)
}

// Escalations are validated with the key they are about.
func TestEscalationsAreValidatedByKey(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		e   worker.Escalations
		key string
	}{
		"no model":      {worker.Escalations{"a": {Threshold: time.Minute}}, `escalations["a"].model`},
		"itself":        {worker.Escalations{"a": {Model: "a", Threshold: time.Minute}}, `escalations["a"].model`},
		"no threshold":  {worker.Escalations{"a": {Model: "b"}}, `escalations["a"].threshold`},
		"unknown mode":  {worker.Escalations{"a": {Model: "b", Threshold: time.Minute, Mode: "fork"}}, `escalations["a"].mode`},
		"chain, cycles": {worker.Escalations{"a": {Model: "b", Threshold: time.Minute}, "b": {Model: "a", Threshold: time.Minute}}, `escalations["a"].model`},
	} {
		err := c.e.Validate()
		var ce *lifecycle.ConfigError
		require.True(t, errors.As(err, &ce), name)
		require.Equal(t, c.key, ce.Key, name)
	}
	require.NoError(t, worker.Escalations{"a": {Model: "b", Threshold: time.Minute}}.Validate())
}

// Both modes through two worker processes (cmd/worker, the escalations
// section of its config file): every request of a batch claimed inside the
// threshold goes to the escalation model — routed there (route), or raced
// there and superseded (race, the slow calls aborted) — with exactly one
// raw line per request naming the escalation model, and counters equal to
// a recount.
func TestEscalationThroughWorkerProcesses(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"route", "race"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			const n = 12
			e := escalationEnv(t, time.Minute)
			extra := sweepFast + "escalations:\n  " + slowModel + ":\n    model: " + fastModel +
				"\n    threshold: 1h\n    mode: " + mode + "\n"
			for range 2 {
				e.startChild(t, childOpts{concurrent: 4, extra: extra})
			}
			reqs := e.newBatch(t, "esc-"+mode, slowModel, n, 30*time.Minute)
			e.publish(t, reqs)
			b := e.waitBatchFinal(t, "esc-"+mode, time.Minute)
			require.Equal(t, lifecycle.BatchCompleted, b.Status)

			lines := e.resultMessages(t, reqs[0].BatchID)
			require.Len(t, lines, n, "one request id per request on the stream")
			for _, r := range reqs {
				require.Len(t, lines[r.ID], 1, "exactly one raw line for %s", r.ID)
				l := lines[r.ID][0]
				require.Equal(t, lifecycle.StateCompleted, l.State)
				require.Equal(t, r.CustomID, l.CustomID)
				require.Equal(t, fastModel, l.RoutedModel)
				rec := e.record(t, r)
				if mode == "route" {
					require.Equal(t, lifecycle.StateCompleted, rec.State)
					require.Empty(t, l.EscalationID)
				} else {
					require.Equal(t, lifecycle.StateSuperseded, rec.State)
					require.Equal(t, copyOf(r).ID, l.EscalationID)
				}
			}
			requireEscalationRecount(t, e, reqs)
			require.Equal(t, n, e.mock.CallsForModel(fastModel))
			if mode == "route" {
				require.Zero(t, e.mock.CallsForModel(slowModel), "nothing went to the slow model")
			} else {
				waitFor(t, 10*time.Second, "the originals' slow calls aborted", func() bool { return e.mock.Concurrent(slowModel) == 0 })
			}
		})
	}
}

// A copy whose original was canceled while both ran loses when it
// completes: it ends superseded and publishes nothing, so the stream
// holds the cancel's line alone for the request.
func TestACopyCompletingAfterItsOriginalWasCanceledPublishesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Models: map[string]mockupstream.Script{
		slowModel: {Latency: &mockupstream.Latency{Min: time.Minute}},
		fastModel: {Latency: &mockupstream.Latency{Min: 2 * time.Second}},
	}}})
	e.startWorker(t, workerOpts{cfg: escalating(worker.EscalateRace, time.Hour)})
	reqs := e.newBatch(t, "race-cancel", slowModel, 1, 30*time.Minute)
	req := reqs[0]
	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "the original and its copy both calling", func() bool {
		return e.mock.Concurrent(slowModel) == 1 && e.mock.Concurrent(fastModel) == 1
	})
	_, err := e.store.CancelRequest(bg(t), req.Ref())
	require.NoError(t, err)
	require.NoError(t, e.q.PublishCancel(bg(t), req.BatchID, req.ID))

	b := e.waitBatchFinal(t, "race-cancel", 30*time.Second)
	require.Equal(t, lifecycle.Counts{Total: 1, Canceled: 1}, b.Counts)
	require.Equal(t, lifecycle.StateSuperseded, e.record(t, copyOf(req)).State, "the copy lost to the cancel")
	lines := e.resultMessages(t, req.BatchID)
	require.Len(t, lines[req.ID], 1, "exactly one raw line: the cancel's")
	require.Equal(t, lifecycle.StateCanceled, lines[req.ID][0].State)
	requireEscalationRecount(t, e, reqs)
}
