package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

func bg(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var slowCall = mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Minute}}

// Cancelling one in-flight request (Redis first, then the event) aborts its
// call; it ends canceled with exactly one result, and the rest of the batch
// is unaffected.
func TestCancelRequestAbortsItsCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-cancel-one", "gpt-4o", 3, time.Hour)
	victim := reqs[0]
	e.mock.Script(victim.ID, slowCall)
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs)
	waitFor(t, 20*time.Second, "the victim's call in flight", func() bool { return e.mock.Concurrent("gpt-4o") >= 1 && e.mock.CallsFor(victim.ID) == 1 })

	_, err := e.store.CancelRequest(bg(t), victim.Ref())
	require.NoError(t, err)
	require.NoError(t, e.q.PublishCancel(bg(t), victim.BatchID, victim.ID))
	waitFor(t, 3*time.Second, "the victim's call aborted", func() bool { return e.mock.Concurrent("gpt-4o") == 0 })

	results := e.waitResults(t, "b-cancel-one", 3, 20*time.Second)
	res := results[victim.ID]
	require.Equal(t, lifecycle.StateCanceled, res.State)
	require.Equal(t, lifecycle.CodeRequestCanceled, res.Error.Code)
	waitFor(t, 5*time.Second, "the aborted call to end", func() bool { return e.mock.Concurrent("gpt-4o") == 0 })
	for _, r := range reqs[1:] {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State)
	}
	require.Equal(t, lifecycle.Counts{Total: 3, Completed: 2, Canceled: 1}, e.batch(t, "b-cancel-one").Counts)
	require.Equal(t, 1, e.mock.CallsFor(victim.ID), "the canceled request never ran again")
}

// Cancelling a batch with calls in flight aborts every one of them; the
// batch ends cancelled with exact counters and one result per request.
func TestCancelBatchAbortsInFlightCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-cancel-all", "gpt-4o", 4, time.Hour)
	for _, r := range reqs {
		e.mock.Script(r.ID, slowCall)
	}
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs)
	waitFor(t, 20*time.Second, "all calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == len(reqs) })

	_, err := e.store.CancelBatch(bg(t), "b-cancel-all")
	require.NoError(t, err)
	require.NoError(t, e.q.PublishCancel(bg(t), "b-cancel-all", ""))
	waitFor(t, 3*time.Second, "every call aborted once redis backs the event", func() bool { return e.mock.Concurrent("gpt-4o") == 0 })

	results := e.waitResults(t, "b-cancel-all", len(reqs), 20*time.Second)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCanceled, results[r.ID].State)
		require.Equal(t, lifecycle.CodeBatchCanceled, results[r.ID].Error.Code)
	}
	waitFor(t, 5*time.Second, "batch finalized", func() bool { return e.batch(t, "b-cancel-all").Status == lifecycle.BatchCancelled })
	require.Equal(t, lifecycle.Counts{Total: 4, Canceled: 4}, e.batch(t, "b-cancel-all").Counts)
	waitFor(t, 5*time.Second, "aborted calls to end", func() bool { return e.mock.Concurrent("gpt-4o") == 0 })
}

// readCountingStore counts the worker's reads of batches and request
// records.
type readCountingStore struct {
	worker.Store
	reads atomic.Int64
}

func (s *readCountingStore) Batch(ctx context.Context, id string) (lifecycle.Batch, error) {
	s.reads.Add(1)
	return s.Store.Batch(ctx, id)
}

func (s *readCountingStore) Request(ctx context.Context, ref lifecycle.Ref) (lifecycle.Record, error) {
	s.reads.Add(1)
	return s.Store.Request(ctx, ref)
}

// forge publishes a control event straight on <p>.ctl.<tail>, as any NATS
// client allowed to publish there could, with no Redis write behind it.
func (e *env) forge(t *testing.T, tail string, ev lifecycle.ControlEvent) {
	t.Helper()
	nc := e.nats.Connect()
	data, err := json.Marshal(ev)
	require.NoError(t, err)
	require.NoError(t, nc.Publish(e.prefix+".ctl."+tail, data))
	require.NoError(t, nc.Flush())
}

// forgedEventsCost starts a worker, forges events (the number forge
// publishes) while every call of reqs is in flight, and checks that each
// event cost one Redis read and aborted nothing: every call runs to its
// end, once, and every request has one completed result.
func forgedEventsCost(t *testing.T, e *env, batchID string, reqs []*lifecycle.Request, events int, forge func()) {
	t.Helper()
	for _, r := range reqs {
		e.mock.Script(r.ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: 1500 * time.Millisecond}})
	}
	store := &readCountingStore{Store: e.store}
	logs := &testlog.Buffer{}
	e.startWorker(t, workerOpts{store: store, logOut: logs})
	e.publish(t, reqs)
	waitFor(t, 20*time.Second, "all calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == len(reqs) })
	require.Equal(t, lifecycle.BatchInProgress, e.batch(t, batchID).Status, "redis says the batch is live")

	before := store.reads.Load()
	forge()
	refused := func() int { return strings.Count(logs.String(), "control event not backed by redis; aborting nothing") }
	waitFor(t, 5*time.Second, "the forged events checked (or a call aborted)", func() bool {
		return refused() >= events || e.mock.Concurrent("gpt-4o") < len(reqs)
	})
	require.Equal(t, len(reqs), e.mock.Concurrent("gpt-4o"), "no call was aborted")
	// The calls last 1.5 s, so nothing else has read Redis yet.
	require.Equal(t, int64(events), store.reads.Load()-before, "one redis read per forged event")

	results := e.waitResults(t, batchID, len(reqs), 30*time.Second)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State, r.ID)
		require.Equal(t, 1, e.mock.CallsFor(r.ID), "%s: the call was not aborted and re-run", r.ID)
	}
	require.Equal(t, lifecycle.Counts{Total: int64(len(reqs)), Completed: int64(len(reqs))}, e.batch(t, batchID).Counts)
	require.Equal(t, events, refused(), "one warning per forged event")
}

// A batch cancel published by hand on the control subject, with no cancel
// in Redis, costs one Redis read however many of the batch's calls are in
// flight, and aborts none of them.
func TestForgedBatchCancelAbortsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-forged", "gpt-4o", 6, time.Hour)
	forgedEventsCost(t, e, "b-forged", reqs, 1, func() {
		e.forge(t, "cancel."+lifecycle.MustEncodeToken("b-forged"),
			lifecycle.ControlEvent{Kind: lifecycle.ControlCancel, BatchID: "b-forged", At: time.Now().UTC()})
	})
}

// A request cancel and a supersede published by hand, with nothing in
// Redis behind them, cost one Redis read each and abort nothing.
func TestForgedRequestCancelAndSupersedeAbortNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-forged-one", "gpt-4o", 3, time.Hour)
	forgedEventsCost(t, e, "b-forged-one", reqs, 2, func() {
		e.forge(t, "cancel."+lifecycle.MustEncodeToken("b-forged-one")+"."+lifecycle.MustEncodeToken(reqs[0].ID),
			lifecycle.ControlEvent{Kind: lifecycle.ControlCancel, BatchID: "b-forged-one", RequestID: reqs[0].ID, At: time.Now().UTC()})
		e.forge(t, "supersede."+lifecycle.MustEncodeToken(reqs[1].ID),
			lifecycle.ControlEvent{Kind: lifecycle.ControlSupersede, RequestID: reqs[1].ID, By: "forger", At: time.Now().UTC()})
	})
}

// Events naming nothing this worker holds cost no Redis read at all.
func TestControlEventsForOtherWorkCostNoRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-mine", "gpt-4o", 2, time.Hour)
	for _, r := range reqs {
		e.mock.Script(r.ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: 1500 * time.Millisecond}})
	}
	store := &readCountingStore{Store: e.store}
	e.startWorker(t, workerOpts{store: store})
	e.publish(t, reqs)
	waitFor(t, 20*time.Second, "all calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == len(reqs) })

	before := store.reads.Load()
	require.NoError(t, e.q.PublishCancel(bg(t), "b-elsewhere", ""))
	require.NoError(t, e.q.PublishCancel(bg(t), "b-mine", "not-here"))
	require.NoError(t, e.q.PublishSupersede(bg(t), "not-here", "forger"))
	// A sentinel event after them, naming a call we hold: once it is
	// checked, the three before it were handled (one callback, in order).
	require.NoError(t, e.q.PublishSupersede(bg(t), reqs[0].ID, "forger"))
	waitFor(t, 5*time.Second, "the sentinel read", func() bool { return store.reads.Load()-before >= 1 })
	require.Equal(t, int64(1), store.reads.Load()-before, "only the sentinel was read")
	e.waitResults(t, "b-mine", len(reqs), 30*time.Second)
	for _, r := range reqs {
		require.Equal(t, 1, e.mock.CallsFor(r.ID))
	}
}

// A message JetStream gives up on (MaxDeliver exhausted) is failed through
// the worker's advisory handler: failed in Redis, one result, exact
// counters. Every delayed nak is a delivery, so a MaxDeliver below the
// retry budget cuts retries short — which is why the worker's settings
// derive it from the budget; here it is set low on purpose.
func TestMaxDeliveriesFailsThroughTheEngine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Failures: &mockupstream.FailureMix{Unavailable: 1},
	}}})
	reqs := e.newBatch(t, "b-poison-adv", "gpt-4o", 1, time.Hour)
	e.startWorker(t, workerOpts{queue: func(c *queue.Config) { c.MaxDeliver = 2 }})
	e.publish(t, reqs)

	results := e.waitResults(t, "b-poison-adv", 1, time.Minute)
	res := results[reqs[0].ID]
	require.Equal(t, lifecycle.StateFailed, res.State)
	require.Equal(t, lifecycle.CodeMaxDeliveries, res.Error.Code)
	require.Equal(t, lifecycle.StateFailed, e.record(t, reqs[0]).State)
	require.Equal(t, lifecycle.Counts{Total: 1, Failed: 1}, e.batch(t, "b-poison-adv").Counts)
	require.Equal(t, 2, e.mock.CallsFor(reqs[0].ID), "one call per delivery, none after the last")
	require.Equal(t, e.mock.CallsFor(reqs[0].ID), res.Attempts, "the poison result counts the calls made")
}

// A malformed message inside a batch is failed in Redis as well as in the
// results, so the batch's counters add up and the batch finishes.
func TestMalformedMessageCountsInItsBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-malformed", "gpt-4o", 3, time.Hour)
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs[:2])
	// The third request arrives with a url that is not a path.
	subj, err := e.q.RequestSubject("gpt-4o", "b-malformed")
	require.NoError(t, err)
	bad := fmt.Sprintf(`{"v":1,"id":%q,"batch_id":"b-malformed","custom_id":"task-2","model":"gpt-4o","method":"POST","url":"https://elsewhere.example/v1","expires_at":%q}`,
		reqs[2].ID, reqs[2].ExpiresAt.Format(time.RFC3339))
	m := nats.NewMsg(subj)
	m.Data = []byte(bad)
	m.Header.Set("Nats-Msg-Id", reqs[2].ID)
	_, err = e.js.PublishMsg(bg(t), m)
	require.NoError(t, err)

	results := e.waitResults(t, "b-malformed", 3, 30*time.Second)
	res := results[reqs[2].ID]
	require.Equal(t, lifecycle.StateFailed, res.State)
	require.Equal(t, lifecycle.CodeMalformedMessage, res.Error.Code)
	require.Contains(t, res.Error.Message, "url")
	require.Equal(t, "task-2", res.CustomID)
	waitFor(t, 5*time.Second, "batch finalized", func() bool { return e.batch(t, "b-malformed").Status == lifecycle.BatchCompleted })
	require.Equal(t, lifecycle.Counts{Total: 3, Completed: 2, Failed: 1}, e.batch(t, "b-malformed").Counts)
	require.Equal(t, lifecycle.StateFailed, e.record(t, reqs[2]).State)
}

// lostReplyStore applies the first Complete for real and then reports
// Redis unreachable, as a connection cut after the script ran would.
type lostReplyStore struct {
	worker.Store
	lost atomic.Bool
}

func (s *lostReplyStore) Complete(ctx context.Context, p lifecycle.Processing, o state.Outcome) (state.Transition, error) {
	tr, err := s.Store.Complete(ctx, p, o)
	if err == nil && s.lost.CompareAndSwap(false, true) {
		return state.Transition{}, fmt.Errorf("reply lost: %w", state.ErrUnavailable)
	}
	return tr, err
}

// A terminal write whose reply is lost is retried; the retry finds the
// write landed under our token, so the result and the batch event still go
// out, once each.
func TestLostReplyOfTheLastWriteStillFinishesTheBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-lost-reply", "gpt-4o", 1, time.Hour)
	store := &lostReplyStore{Store: e.store}
	e.startWorker(t, workerOpts{store: store})
	e.publish(t, reqs)

	results := e.waitResults(t, "b-lost-reply", 1, 30*time.Second)
	require.Equal(t, lifecycle.StateCompleted, results[reqs[0].ID].State)
	require.True(t, store.lost.Load(), "the reply was lost once")
	waitFor(t, 10*time.Second, "the batch event", func() bool { return e.batchEvents(t, "b-lost-reply") == 1 })
	require.Equal(t, lifecycle.Counts{Total: 1, Completed: 1}, e.batch(t, "b-lost-reply").Counts)
	require.Equal(t, 1, e.mock.CallsFor(reqs[0].ID), "the call was not repeated")
}

// A response body larger than one NATS message goes to the object store
// before the terminal write, so neither Redis nor the result line carries
// it; the result resolves to the full body.
func TestLargeResponseBodyTravelsByReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{ReplyWords: 250_000}}})
	reqs := e.newBatch(t, "b-big", "gpt-4o", 1, time.Hour)
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs)

	results := e.waitResults(t, "b-big", 1, 30*time.Second)
	res := results[reqs[0].ID]
	require.Equal(t, lifecycle.StateCompleted, res.State)
	require.NotNil(t, res.Response.BodyRef, "the body went by reference")
	require.Empty(t, res.Response.Body)
	require.NoError(t, e.q.ResolveBody(bg(t), res))
	require.Greater(t, len(res.Response.Body), 1<<20, "larger than the default 1 MiB max payload")
	require.Contains(t, string(res.Response.Body), "chat.completion")
}

// While Redis does not answer, a delivery is held (kept alive by the
// heartbeat) instead of nak'd, so an outage longer than several redelivery
// cycles costs no JetStream deliveries: with MaxDeliver 2 every request
// still completes, each called upstream once. (Nak'ing each failed claim
// would spend the two deliveries within the stall and fail the requests.)
func TestRedisStallDoesNotBurnDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-stall", "gpt-4o", 5, time.Hour)
	e.startWorker(t, workerOpts{
		cfg:   worker.Config{OpTimeout: 300 * time.Millisecond},
		queue: func(c *queue.Config) { c.MaxDeliver = 2 },
	})
	// Redis stops answering for 10 s: longer than AckWait (2 s) and than
	// two claim attempts of go-redis's 3 s read timeout plus a 2 s nak.
	stalled := e.redis.Stall(10 * time.Second)
	e.publish(t, reqs)

	results := e.waitResults(t, "b-stall", len(reqs), time.Minute)
	require.NoError(t, <-stalled)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State, "%s: %+v", r.ID, results[r.ID].Error)
		require.Equal(t, 1, e.mock.CallsFor(r.ID))
	}
	require.Equal(t, lifecycle.Counts{Total: 5, Completed: 5}, e.batch(t, "b-stall").Counts)
}

// A supersede backed by Redis aborts the loser's in-flight call; the loser
// publishes nothing (the winning copy's result stands for the request: the
// batch waits for it, here in vain, as no copy runs) and the batch counts
// it superseded.
func TestSupersedeAbortsTheLosersCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-race", "gpt-4o", 2, time.Hour)
	loser := reqs[0]
	e.mock.Script(loser.ID, slowCall)
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs)
	waitFor(t, 20*time.Second, "the loser's call in flight", func() bool { return e.mock.Concurrent("gpt-4o") == 1 && e.mock.CallsFor(loser.ID) == 1 })

	_, err := e.store.Supersede(bg(t), loser.Ref(), "copy-of-"+loser.ID)
	require.NoError(t, err)
	require.NoError(t, e.q.PublishSupersede(bg(t), loser.ID, "copy-of-"+loser.ID))

	waitFor(t, 10*time.Second, "the aborted call to end", func() bool { return e.mock.Concurrent("gpt-4o") == 0 })
	waitFor(t, 10*time.Second, "every request ended", func() bool { return e.batch(t, "b-race").Status == lifecycle.BatchFinalizing })
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Superseded: 1}, e.batch(t, "b-race").Counts)
	results := e.waitResults(t, "b-race", 1, 5*time.Second)
	require.NotContains(t, results, loser.ID, "the loser publishes no result of its own")
	require.Equal(t, 1, e.mock.CallsFor(loser.ID))
}

// A Redis stall longer than the lease and AckWait while calls are in flight
// runs no call twice: the in-progress heartbeats go on while the lease
// refresh waits for Redis, so JetStream never hands the deliveries to the
// idle peer, and the first refresh after the stall extends the leases
// (nobody claimed them). Were the in-progress messages to wait for the
// refresh, the peer would get the redelivered messages and its claims,
// answered after the stall, would take the expired leases over.
func TestRedisStallWithCallsInFlightRunsEachOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 7 * time.Second, Max: 7 * time.Second},
	}}})
	reqs := e.newBatch(t, "b-stall-run", "gpt-4o", 8, time.Hour)
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "all calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == len(reqs) })
	e.startWorker(t, workerOpts{}) // idle: it would take any redelivered message

	// 4 s: twice the lease (2 s) and AckWait (2 s).
	require.NoError(t, <-e.redis.Stall(4*time.Second))

	results := e.waitResults(t, "b-stall-run", len(reqs), time.Minute)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State, "%s: %+v", r.ID, results[r.ID].Error)
		require.Equal(t, 1, e.mock.CallsFor(r.ID), r.ID)
	}
	require.Equal(t, lifecycle.Counts{Total: 8, Completed: 8}, e.batch(t, "b-stall-run").Counts)
}
