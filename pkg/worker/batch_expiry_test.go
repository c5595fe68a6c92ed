package worker_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A batch created over the API with a 3 s completion window, against an
// upstream that never answers, run by two worker processes: at the
// deadline its calls are cut, its queued requests ended, and the batch
// ends expired with every request accounted for — counters summing to the
// total, one result line per request — and exactly one expired event.
func TestBatchWithAThreeSecondWindowExpiresAgainstAnUpstreamThatNeverAnswers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	const (
		id = "b-expire"
		n  = 300
	)
	testbin.Worker(t)
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: time.Hour},
	}}})
	for range 2 {
		e.startChild(t, childOpts{concurrent: 16, extra: sweepFast})
	}
	a := e.apiClient()
	a.waitServed(t)
	events := e.countEvents(t, id)

	created := a.create(t, id, n, "3s")
	require.NotNil(t, created.ExpiresAt)
	require.NotNil(t, created.CreatedAt)
	require.Equal(t, int64(3), *created.ExpiresAt-*created.CreatedAt, "expires_at is created_at + 3 s")
	reqs := batchRequests(id, "gpt-4o", n, time.Time{}) // the batch's deadline applies
	e.publish(t, reqs)
	waitFor(t, 10*time.Second, "calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == 32 })

	b := a.waitFinal(t, id, 30*time.Second)
	require.Equal(t, string(lifecycle.BatchExpired), b.Status)
	require.NotNil(t, b.ExpiredAt)
	requireCountsAddUp(t, b, n)
	require.Equal(t, int64(n), b.Salvo.Counts.Expired, "every request expired: %+v", b.Salvo.Counts)
	require.Equal(t, int64(n), b.Salvo.ResultsPublished)
	require.Zero(t, b.Salvo.ResultsMissing)
	waitFor(t, 5*time.Second, "the expired calls off the upstream", func() bool { return e.mock.Concurrent("gpt-4o") == 0 })

	for _, r := range requireOneResultLine(t, e, id, reqs) {
		require.Equal(t, lifecycle.StateExpired, r.State, r.ID)
		require.NotNil(t, r.Error, r.ID)
		require.Equal(t, lifecycle.CodeBatchExpired, r.Error.Code, r.ID)
	}
	events.requireOnce(t, id, lifecycle.EventExpired, 2*time.Second)
	waitFor(t, 10*time.Second, "no message of the batch left in REQUESTS", func() bool { return e.requestsIdle(t) })
}

// A batch whose queued messages were purged from REQUESTS by hand while
// no worker ran: half of it had completed, the other half is gone before
// any worker read it. The batch does not stay in_progress forever: at its
// deadline the sweep expires it, and it ends expired with the completed
// half kept, the lost half counted expired and reported as results_missing.
func TestBatchWhoseQueuedMessagesWerePurgedByHandStillEnds(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	const (
		id   = "b-purged"
		half = 50
	)
	testbin.Worker(t)
	e := newEnv(t, envOpts{})
	w := e.startChild(t, childOpts{extra: sweepFast})
	a := e.apiClient()
	a.waitServed(t)
	events := e.countEvents(t, id)

	a.create(t, id, 2*half, "8s")
	reqs := batchRequests(id, "gpt-4o", 2*half, time.Time{})
	e.publish(t, reqs[:half])
	e.waitResults(t, id, half, 20*time.Second)
	w.signal(t, syscall.SIGTERM)
	require.NoError(t, w.wait(t, 15*time.Second))

	// No worker runs: the second half is stored, then purged by hand with
	// a subject filter, as an operator would.
	e.publish(t, reqs[half:])
	subj, err := e.q.RequestSubject("gpt-4o", id)
	require.NoError(t, err)
	require.Equal(t, uint64(half), e.storedOnRequests(t, subj))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.q.RequestsStream())
	require.NoError(t, err)
	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSubject(subj)))
	require.Zero(t, e.storedOnRequests(t, subj))

	e.startChild(t, childOpts{extra: sweepFast})
	a.waitServed(t)
	before := a.get(t, id)
	require.Equal(t, string(lifecycle.BatchInProgress), before.Status, "the batch waits for its deadline")

	b := a.waitFinal(t, id, 30*time.Second)
	require.Equal(t, string(lifecycle.BatchExpired), b.Status)
	requireCountsAddUp(t, b, 2*half)
	require.Equal(t, int64(half), b.Salvo.Counts.Completed, "%+v", b.Salvo.Counts)
	require.Equal(t, int64(half), b.Salvo.Counts.Expired, "%+v", b.Salvo.Counts)
	require.Equal(t, int64(half), b.Salvo.ResultsPublished)
	require.Equal(t, int64(half), b.Salvo.ResultsMissing, "the purged requests' results are missing, and said so")
	require.Equal(t, uint64(half), e.resultCount(t, id), "one result line per completed request, none for the purged ones")
	events.requireOnce(t, id, lifecycle.EventExpired, 2*time.Second)
}

// storedOnRequests is how many messages the REQUESTS stream holds on subj.
func (e *env) storedOnRequests(t testing.TB, subj string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.q.RequestsStream())
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	require.NoError(t, err)
	return info.State.Subjects[subj]
}

// A worker killed with calls in flight, and the batch's messages purged by
// hand before any worker came back: the requests it held are in progress
// in Redis with no lease and no message, and the rest were never read.
// The sweep ends the held ones failed message_lost before the deadline
// (with their results); at the deadline the batch ends expired, the
// never-read ones counted expired and reported as results_missing.
func TestBatchPurgedByHandWithCallsCutByAKillStillEnds(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("child processes")
	}
	const (
		id   = "b-purged-kill"
		n    = 20
		held = 16 // the worker's concurrency
	)
	testbin.Worker(t)
	e := newEnv(t, envOpts{mock: mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: time.Hour},
	}}})
	w := e.startChild(t, childOpts{concurrent: held, extra: sweepFast})
	a := e.apiClient()
	a.waitServed(t)
	events := e.countEvents(t, id)

	a.create(t, id, n, "12s")
	reqs := batchRequests(id, "gpt-4o", n, time.Time{})
	e.publish(t, reqs)
	waitFor(t, 10*time.Second, "the worker's calls in flight", func() bool { return e.mock.Concurrent("gpt-4o") == held })
	w.signal(t, syscall.SIGKILL)
	_ = w.wait(t, 10*time.Second)

	subj, err := e.q.RequestSubject("gpt-4o", id)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.q.RequestsStream())
	require.NoError(t, err)
	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSubject(subj)))
	require.Zero(t, e.storedOnRequests(t, subj))

	e.startChild(t, childOpts{concurrent: held, extra: sweepFast})
	a.waitServed(t)
	waitFor(t, 8*time.Second, "the held requests ended message_lost before the deadline", func() bool {
		b := a.get(t, id)
		require.Equal(t, string(lifecycle.BatchInProgress), b.Status)
		return b.Salvo.Counts.Failed == held
	})

	b := a.waitFinal(t, id, 30*time.Second)
	require.Equal(t, string(lifecycle.BatchExpired), b.Status)
	requireCountsAddUp(t, b, n)
	require.Equal(t, int64(held), b.Salvo.Counts.Failed, "%+v", b.Salvo.Counts)
	require.Equal(t, int64(n-held), b.Salvo.Counts.Expired, "%+v", b.Salvo.Counts)
	require.Equal(t, int64(held), b.Salvo.ResultsPublished)
	require.Equal(t, int64(n-held), b.Salvo.ResultsMissing)
	results := e.resultMessages(t, id)
	require.Len(t, results, held, "a result line for each held request, none for the never-read ones")
	for rid, rs := range results {
		require.Len(t, rs, 1, rid)
		require.Equal(t, lifecycle.StateFailed, rs[0].State, rid)
		require.NotNil(t, rs[0].Error, rid)
		require.Equal(t, lifecycle.CodeMessageLost, rs[0].Error.Code, rid)
	}
	events.requireOnce(t, id, lifecycle.EventExpired, 2*time.Second)
}
