package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

// slowMarkStore takes a while to mark results published, as a busy Redis
// would; with failing set, every mark fails as if Redis were cut off.
type slowMarkStore struct {
	worker.Store
	delay   time.Duration
	failing bool
}

func (s *slowMarkStore) MarkPublished(ctx context.Context, refs []lifecycle.Ref) ([]lifecycle.Batch, error) {
	if s.failing {
		return nil, fmt.Errorf("mark published: %w", state.ErrUnavailable)
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.MarkPublished(ctx, refs)
}

// checkedDelivery is a delivery handed to Worker.Handle directly that
// reads the request's record when it is acked.
type checkedDelivery struct {
	req   *lifecycle.Request
	e     *env
	mu    sync.Mutex
	acked bool
	naked bool
	// published is the record's published flag at the moment of the ack.
	published bool
	err       error
}

func (d *checkedDelivery) Request() *lifecycle.Request                      { return d.req }
func (d *checkedDelivery) NumDelivered() uint64                             { return 1 }
func (d *checkedDelivery) StreamSeq() uint64                                { return 0 }
func (d *checkedDelivery) Stored() time.Time                                { return time.Now() }
func (d *checkedDelivery) TraceParent() string                              { return "" }
func (d *checkedDelivery) TraceContext(ctx context.Context) context.Context { return ctx }
func (d *checkedDelivery) InProgress(context.Context) error                 { return nil }
func (d *checkedDelivery) Term(context.Context, string) error               { return errors.New("unexpected term") }
func (d *checkedDelivery) Nak(context.Context, time.Duration) error {
	d.mu.Lock()
	d.naked = true
	d.mu.Unlock()
	return nil
}

func (d *checkedDelivery) Ack(ctx context.Context) error {
	rec, err := d.e.store.Request(ctx, d.req.Ref())
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acked, d.published, d.err = true, rec.Published, err
	return nil
}

// A delivery is acked only once its request's result is marked published
// in Redis: a worker that dies right after the ack leaves nothing that a
// late duplicate of the message could publish a second time.
func TestResultIsMarkedPublishedBeforeTheAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const n = 20
	reqs := e.newBatch(t, "b-mark-ack", "gpt-4o", n, time.Hour)
	w := e.startWorker(t, workerOpts{store: &slowMarkStore{Store: e.store, delay: 100 * time.Millisecond}})

	ds := make([]*checkedDelivery, n)
	var wg sync.WaitGroup
	for i, r := range reqs {
		ds[i] = &checkedDelivery{req: r, e: e}
		wg.Add(1)
		go func() { defer wg.Done(); w.Handle(ds[i]) }()
	}
	wg.Wait()
	for _, d := range ds {
		require.NoError(t, d.err)
		require.True(t, d.acked, "%s acked", d.req.ID)
		require.False(t, d.naked, "%s not nak'd", d.req.ID)
		require.True(t, d.published, "%s: published=1 in redis when its message was acked", d.req.ID)
	}
	require.Equal(t, uint64(n), e.resultCount(t, "b-mark-ack"))
}

// Marks that never land (a worker that dies between publish and mark, as
// far as Redis can tell) keep the messages unacked; another worker
// finishes them, and publishing every request again after the duplicate
// window adds no result: exactly one result per request on the stream.
func TestLateDuplicatesAfterLostMarksPublishNoSecondResult(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits out a duplicate window")
	}
	const dedup = 5 * time.Second
	e := newEnv(t, envOpts{dedup: dedup})
	const n = 20
	reqs := e.newBatch(t, "b-late-dup", "gpt-4o", n, time.Hour)
	first := e.startWorker(t, workerOpts{store: &slowMarkStore{Store: e.store, failing: true}})
	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "the first results", func() bool { return e.resultCount(t, "b-late-dup") >= n })
	lastPublish := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, first.Stop(ctx))

	e.startWorker(t, workerOpts{})
	// On a worker that acks before the mark, nothing is ever redelivered
	// and the records stay unpublished; do not wait for what never comes.
	waitAWhile(20*time.Second, func() bool { return e.requestsIdle(t) })
	waitFor(t, 2*dedup, "the duplicate window to pass", func() bool { return time.Since(lastPublish) > dedup+time.Second })

	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "the duplicates handled", func() bool { return e.requestsIdle(t) })
	results := e.waitResults(t, "b-late-dup", n, 10*time.Second)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State)
		require.True(t, e.record(t, r).Published, r.ID)
	}
	require.Equal(t, lifecycle.Counts{Total: n, Completed: n}, e.batch(t, "b-late-dup").Counts)
}

// waitAWhile checks cond every 25 ms until it holds or timeout passes.
func waitAWhile(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(25 * time.Millisecond)
	defer poll.Stop()
	for ; !cond(); <-poll.C {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// lateRefreshStore holds every lease refresh until the requests it names
// have ended, so each refresh races a completion and loses it.
type lateRefreshStore struct {
	worker.Store
}

func (s *lateRefreshStore) Refresh(ctx context.Context, hs []lifecycle.Held) []error {
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for _, h := range hs {
		for {
			rec, err := s.Request(ctx, h.Ref)
			if err == nil && rec.State.Terminal() {
				break
			}
			select {
			case <-ctx.Done():
				return s.Store.Refresh(ctx, hs)
			case <-poll.C:
			}
		}
	}
	return s.Store.Refresh(ctx, hs)
}

// A heartbeat whose refresh finds the request already ended by its own
// holder is no lost lease: no warning, nothing aborted.
func TestHeartbeatRacingACompletionWarnsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond},
	}}})
	const n = 40
	reqs := e.newBatch(t, "b-hb-race", "gpt-4o", n, time.Hour)
	logs := &testlog.Buffer{}
	e.startWorker(t, workerOpts{
		cfg:    worker.Config{HeartbeatInterval: 10 * time.Millisecond},
		store:  &lateRefreshStore{Store: e.store},
		logOut: logs,
	})
	e.publish(t, reqs)
	results := e.waitResults(t, "b-hb-race", n, time.Minute)
	for _, r := range reqs {
		require.Equal(t, lifecycle.StateCompleted, results[r.ID].State)
		require.Equal(t, 1, e.mock.CallsFor(r.ID), "no call aborted and repeated")
	}
	out := logs.String()
	require.Zero(t, strings.Count(out, "lease lost"), "lease-lost warnings for requests that completed normally")
	require.Zero(t, strings.Count(out, `"level":"warn"`), "warnings:\n%s", out)
}

// A call cut by a shutdown counts: the request completes on another worker
// with attempts equal to the upstream calls made for it.
func TestAttemptsCountCallsCutByShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{ackWait: time.Minute, leaseTTL: time.Minute})
	reqs := e.newBatch(t, "b-attempts", "gpt-4o", 1, time.Hour)
	req := reqs[0]
	e.mock.Script(req.ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Minute}})
	first := e.startWorker(t, workerOpts{cfg: worker.Config{ShutdownGrace: 50 * time.Millisecond}})
	e.publish(t, reqs)
	waitFor(t, 30*time.Second, "the first call in flight", func() bool { return e.mock.Concurrent("gpt-4o") == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, first.Stop(ctx))
	rec := e.record(t, req)
	require.Equal(t, lifecycle.StatePending, rec.State, "handed back")
	require.Equal(t, 1, rec.Attempt, "the cut call counts")

	e.mock.Script(req.ID, mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Millisecond}})
	e.startWorker(t, workerOpts{})
	res := e.waitResults(t, "b-attempts", 1, 30*time.Second)[req.ID]
	require.Equal(t, lifecycle.StateCompleted, res.State)
	require.Equal(t, 2, e.mock.CallsFor(req.ID))
	require.Equal(t, e.mock.CallsFor(req.ID), res.Attempts, "attempts equal the upstream calls")
	require.Equal(t, 2, e.record(t, req).Attempt)
}

// Many short requests under a heartbeat faster than most of them: the
// beats race the completions all the time, and no warning comes of it.
func TestManyShortRequestsUnderAFastHeartbeatWarnNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("500 requests")
	}
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 0, Max: 5 * time.Millisecond},
	}}})
	const n = 500
	reqs := e.newBatch(t, "b-hb-many", "gpt-4o", n, time.Hour)
	logs := &testlog.Buffer{}
	e.startWorker(t, workerOpts{cfg: worker.Config{HeartbeatInterval: 20 * time.Millisecond}, logOut: logs})
	e.publish(t, reqs)
	e.waitResults(t, "b-hb-many", n, time.Minute)
	require.Zero(t, strings.Count(logs.String(), "lease lost"), "lease-lost warnings for requests that completed normally")
}
