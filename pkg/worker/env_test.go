package worker_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

// Test timings: short leases and AckWait so crash recovery is quick, a
// heartbeat well inside both.
const (
	testAckWait   = 2 * time.Second
	testLeaseTTL  = 2 * time.Second
	testHeartbeat = 300 * time.Millisecond
)

// env is one isolated salvo deployment: its own redis-server, embedded NATS
// and mock upstream.
type env struct {
	t      testing.TB
	redis  *testredis.Server
	nats   *testnats.Server
	mock   *mockupstream.Server
	store  *state.Store
	q      *queue.Client
	js     jetstream.JetStream
	prefix string
	dedup  time.Duration // the streams' duplicate window, 0 for the default
}

type envOpts struct {
	mock     mockupstream.Options
	ackWait  time.Duration
	leaseTTL time.Duration
	// dedup shortens the streams' duplicate window (a duplicate publish
	// after it is stored again).
	dedup time.Duration
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.ackWait == 0 {
		o.ackWait = testAckWait
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = testLeaseTTL
	}
	e := &env{t: t, redis: testredis.New(t), nats: testnats.New(t), dedup: o.dedup}
	e.prefix = e.redis.Prefix
	e.mock = testupstream.New(t, o.mock)
	var err error
	// As cmd/worker does: per-call context deadlines bound Redis calls.
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	e.store, err = state.New(rdb, state.Config{Prefix: e.prefix, LeaseTTL: o.leaseTTL, MaxReclaims: 2})
	require.NoError(t, err)
	e.q = e.newQueue(t, o.ackWait)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.q.Provision(ctx))
	e.js, err = jetstream.New(e.nats.Connect())
	require.NoError(t, err)
	return e
}

func (e *env) queueConfig(ackWait time.Duration) queue.Config {
	return queue.Config{
		Prefix:            e.prefix,
		AckWait:           ackWait,
		DiscoveryInterval: 100 * time.Millisecond,
		FetchExpiry:       time.Second,
		DuplicateWindow:   e.dedup,
	}
}

func (e *env) newQueue(t testing.TB, ackWait time.Duration) *queue.Client {
	t.Helper()
	log := zerolog.Nop()
	if testing.Verbose() && os.Getenv("SALVO_TEST_LOGS") != "" {
		log = zerolog.New(zerolog.NewTestWriter(t))
	}
	q, err := queue.New(e.nats.Connect(), e.queueConfig(ackWait), log)
	require.NoError(t, err)
	return q
}

// workerOpts tune one in-process worker.
type workerOpts struct {
	cfg    worker.Config
	queue  func(*queue.Config) // adjusts this worker's JetStream config
	store  worker.Store        // replaces the env's store (fault injection over it)
	http   *httpclient.Config
	logOut *testlog.Buffer
	meter  metric.MeterProvider // records the worker's metrics (metrics_test.go)
	tracer trace.TracerProvider // makes the worker's spans (tracing_test.go)
}

// startWorker starts an in-process worker with its own NATS connection and
// HTTP client, stopped when the test ends.
func (e *env) startWorker(t testing.TB, o workerOpts) *worker.Worker {
	t.Helper()
	cfg := o.cfg
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = testHeartbeat
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = time.Second
	}
	if cfg.GlobalSlotTTL == 0 {
		cfg.GlobalSlotTTL = 2 * time.Second
	}
	if cfg.Retry.Backoff == 0 {
		cfg.Retry.Backoff = 50 * time.Millisecond
		cfg.Retry.MaxBackoff = 500 * time.Millisecond
	}
	hc := httpclient.Config{Default: &httpclient.Route{BaseURL: e.mock.URL()}}
	if o.http != nil {
		hc = *o.http
	}
	hc.Retry = cfg.Retry.WithDefaults()
	hc.TransportBackoff = 20 * time.Millisecond
	log := zerolog.Nop()
	if testing.Verbose() && os.Getenv("SALVO_TEST_LOGS") != "" {
		log = zerolog.New(zerolog.NewTestWriter(t))
	}
	if o.logOut != nil {
		log = zerolog.New(o.logOut)
	}
	up, err := httpclient.New(hc.WithDefaults(), log)
	require.NoError(t, err)
	qc := e.queueConfig(testAckWait)
	if o.queue != nil {
		o.queue(&qc)
	}
	q, err := queue.New(e.nats.Connect(), qc, log)
	require.NoError(t, err)
	var store worker.Store = e.store
	if o.store != nil {
		store = o.store
	}
	w, err := worker.New(worker.Deps{Store: store, Queue: q, Upstream: up, Logger: log, Meter: o.meter, Tracer: o.tracer}, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, w.Stop(ctx))
		up.Close()
	})
	return w
}

// newBatch creates a batch of n requests for model in Redis and returns the
// requests (not yet published).
func (e *env) newBatch(t testing.TB, id, model string, n int, window time.Duration) []*lifecycle.Request {
	t.Helper()
	now := time.Now().UTC()
	expires := now.Add(window)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := e.store.CreateBatch(ctx, state.NewBatch{
		ID: id, CompletionWindow: window.String(), Endpoint: "/v1/chat/completions",
		CreatedAt: now, ExpiresAt: expires, Total: int64(n),
	})
	require.NoError(t, err)
	// Created straight in the store, the batch's created event is not
	// published: marked done, so that the sweep does not publish it after
	// batches.event_retry on a slow run and batchEvents counts the final
	// event alone.
	require.NoError(t, e.store.BatchEventDone(ctx, id, lifecycle.EventCreated))
	return batchRequests(id, model, n, expires)
}

// batchRequests are n requests of batch id for model, named
// <id>-r00000…, expiring at expires (zero: the batch's deadline applies).
func batchRequests(id, model string, n int, expires time.Time) []*lifecycle.Request {
	reqs := make([]*lifecycle.Request, n)
	for i := range reqs {
		reqs[i] = &lifecycle.Request{
			V: lifecycle.WireVersion, ID: fmt.Sprintf("%s-r%05d", id, i), BatchID: id,
			CustomID: fmt.Sprintf("task-%d", i), Model: model, Method: "POST", URL: "/v1/chat/completions",
			Body:      []byte(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, model, i)),
			ExpiresAt: expires,
		}
	}
	return reqs
}

func (e *env) publish(t testing.TB, reqs []*lifecycle.Request) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := e.q.NewPublisher()
	for _, r := range reqs {
		require.NoError(t, p.Publish(ctx, r))
	}
	require.NoError(t, p.Flush(ctx))
}

// resultCount is how many result messages the batch's subject holds in the
// RESULTS stream, duplicates included.
func (e *env) resultCount(t testing.TB, batchID string) uint64 {
	t.Helper()
	return e.storedOn(t, e.q.ResultSubject(batchID))
}

// storedOn is how many messages the RESULTS stream holds on subj.
func (e *env) storedOn(t testing.TB, subj string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.q.ResultsStream())
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	require.NoError(t, err)
	return info.State.Subjects[subj]
}

// waitResults waits until the batch has want result messages and returns
// them by request id, failing on a duplicate id.
func (e *env) waitResults(t testing.TB, batchID string, want int, timeout time.Duration) map[string]*lifecycle.Result {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d results of %s", want, batchID), func() bool {
		return e.resultCount(t, batchID) >= uint64(want)
	})
	// A duplicate would land right after: the count must stay at want a
	// moment longer.
	holdsFor(t, 200*time.Millisecond, func() {
		require.Equal(t, uint64(want), e.resultCount(t, batchID), "exactly one result message per request")
	})
	out := map[string]*lifecycle.Result{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.q.ReplayResults(ctx, batchID, func(r *lifecycle.Result) error {
		require.NotContains(t, out, r.ID, "duplicate result for %s", r.ID)
		out[r.ID] = r
		return nil
	}))
	require.Len(t, out, want)
	return out
}

// requestsIdle reports whether every consumer of the REQUESTS stream has
// nothing left to deliver and nothing awaiting an ack.
func (e *env) requestsIdle(t testing.TB) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.q.RequestsStream())
	require.NoError(t, err)
	idle := true
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			idle = false
		}
	}
	require.NoError(t, l.Err())
	return idle
}

func (e *env) batch(t testing.TB, id string) lifecycle.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := e.store.Batch(ctx, id)
	require.NoError(t, err)
	return b
}

func (e *env) record(t testing.TB, r *lifecycle.Request) state.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := e.store.Request(ctx, r.Ref())
	require.NoError(t, err)
	return rec
}

// batchEvents counts the batch's lifecycle events in the RESULTS stream.
func (e *env) batchEvents(t testing.TB, batchID string) uint64 {
	t.Helper()
	return e.storedOn(t, e.q.BatchEventSubject(batchID))
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	pollEvery(t, 25*time.Millisecond, timeout, what, cond)
}

// pollEvery checks cond every interval until it holds, failing after timeout.
func pollEvery(t testing.TB, interval, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(interval)
	defer poll.Stop()
	for ; !cond(); <-poll.C {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// holdsFor runs check every 25 ms for d; check fails the test (with
// require, on the test goroutine) as soon as what it asserts stops holding.
func holdsFor(t testing.TB, d time.Duration, check func()) {
	t.Helper()
	poll := time.NewTicker(25 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(d); ; <-poll.C {
		check()
		if time.Now().After(deadline) {
			return
		}
	}
}
