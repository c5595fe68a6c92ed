package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// What the batch API tests run against: worker processes (each serves the
// batch API and runs the sweep), a client that speaks to the API over NATS
// only, a core NATS subscription that counts every batch event published
// (JetStream's duplicate window cannot hide a repeat from it), and the
// mock upstream's calls counted per batch.

// sweepFast is the batches: section of a worker whose sweep runs often
// enough for a test to watch a batch expire within seconds.
const sweepFast = `batches:
  sweep_interval: 100ms
  stranded_after: 1s
  finalize_grace: 1s
  event_retry: 500ms
`

// apiClient calls the batch API over NATS, as a client with nothing but
// NATS credentials would.
type apiClient struct {
	nc     *nats.Conn
	prefix string
}

func (e *env) apiClient() *apiClient {
	return &apiClient{nc: e.nats.Connect(), prefix: e.prefix}
}

// call sends body as JSON to the endpoint and decodes the success reply
// into out; an error reply fails t.
func (a *apiClient) call(t testing.TB, endpoint string, body, out any) {
	t.Helper()
	data, err := json.Marshal(body)
	require.NoError(t, err)
	msg, err := a.nc.Request(api.Subject(a.prefix, endpoint), data, 10*time.Second)
	require.NoError(t, err, "%s %s", endpoint, data)
	require.Empty(t, msg.Header.Get(micro.ErrorCodeHeader), "%s %s: error reply %s", endpoint, data, msg.Data)
	if out != nil {
		require.NoError(t, json.Unmarshal(msg.Data, out), "%s reply %s", endpoint, msg.Data)
	}
}

// waitServed waits until a worker serves the API.
func (a *apiClient) waitServed(t testing.TB) {
	t.Helper()
	waitFor(t, 30*time.Second, "the batch API answering", func() bool {
		_, err := a.nc.Request(api.Subject(a.prefix, "batch.list"), []byte(`{"limit":1}`), 2*time.Second)
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
			return false
		}
		require.NoError(t, err)
		return true
	})
}

// create creates batch id of total requests with the completion window.
func (a *apiClient) create(t testing.TB, id string, total int, window string) api.BatchObject {
	t.Helper()
	var b api.BatchObject
	a.call(t, "batch.create", map[string]any{"id": id, "total": total, "completion_window": window,
		"endpoint": "/v1/chat/completions"}, &b)
	require.Equal(t, id, b.ID)
	return b
}

func (a *apiClient) get(t testing.TB, id string) api.BatchObject {
	t.Helper()
	var b api.BatchObject
	a.call(t, "batch.get", map[string]string{"id": id}, &b)
	return b
}

func (a *apiClient) cancel(t testing.TB, id string) api.BatchObject {
	t.Helper()
	var b api.BatchObject
	a.call(t, "batch.cancel", map[string]string{"id": id}, &b)
	return b
}

// waitFinal follows batch.get until the batch is in a terminal status and
// returns it.
func (a *apiClient) waitFinal(t testing.TB, id string, timeout time.Duration) api.BatchObject {
	t.Helper()
	var b api.BatchObject
	pollEvery(t, 100*time.Millisecond, timeout, "batch "+id+" final (batch.get)", func() bool {
		b = a.get(t, id)
		return lifecycle.BatchStatus(b.Status).Terminal()
	})
	return b
}

// eventCount counts the batch events published on a core NATS
// subscription, by batch and type.
type eventCount struct {
	mu  sync.Mutex
	n   map[string]map[lifecycle.BatchEventType]int
	bad []string // messages that are not batch events
}

// countEvents subscribes to the events of batchID ("" for every batch)
// before returning, so it sees every event published afterwards.
func (e *env) countEvents(t testing.TB, batchID string) *eventCount {
	t.Helper()
	subj := e.q.BatchEventSubject(batchID)
	if batchID == "" {
		subj = strings.TrimSuffix(e.q.BatchEventSubject("x"), lifecycle.BatchToken("x")) + ">"
	}
	c := &eventCount{n: map[string]map[lifecycle.BatchEventType]int{}}
	nc := e.nats.Connect()
	_, err := nc.Subscribe(subj, func(m *nats.Msg) {
		var ev lifecycle.BatchEvent
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Batch.ID == "" || ev.Type == "" {
			c.bad = append(c.bad, fmt.Sprintf("%s: %s", m.Subject, m.Data))
			return
		}
		if c.n[ev.Batch.ID] == nil {
			c.n[ev.Batch.ID] = map[lifecycle.BatchEventType]int{}
		}
		c.n[ev.Batch.ID][ev.Type]++
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return c
}

// of is how many events of each type batchID had.
func (c *eventCount) of(batchID string) map[lifecycle.BatchEventType]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[lifecycle.BatchEventType]int{}
	for k, v := range c.n[batchID] {
		out[k] = v
	}
	return out
}

// requireOnce requires that batchID had exactly one created event and
// exactly one terminal event, of type final, and nothing else; it checks
// for hold so that a repeat published late is caught.
func (c *eventCount) requireOnce(t testing.TB, batchID string, final lifecycle.BatchEventType, hold time.Duration) {
	t.Helper()
	want := map[lifecycle.BatchEventType]int{lifecycle.EventCreated: 1, final: 1}
	waitFor(t, 10*time.Second, "the events of "+batchID, func() bool { return len(c.of(batchID)) == len(want) })
	holdsFor(t, hold, func() {
		require.Equal(t, want, c.of(batchID), "events of %s, counted on a core subscription", batchID)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Empty(t, c.bad, "messages on the event subjects that are not batch events")
}

// batchCalls counts the mock upstream's calls by the batch they carry
// (X-Salvo-Batch-Id): in flight now, when each started, and when the
// batch's last call in flight ended. A call is in flight from the moment
// the mock has read it until its handler returns or its client went away.
type batchCalls struct {
	mu       sync.Mutex
	inFlight map[string]int
	zeroAt   map[string]time.Time
	starts   map[string][]time.Time
}

func newBatchCalls() *batchCalls {
	return &batchCalls{inFlight: map[string]int{}, zeroAt: map[string]time.Time{}, starts: map[string][]time.Time{}}
}

// hook is the mock's OnRequest.
func (c *batchCalls) hook(r *http.Request, _, _ string) {
	b := r.Header.Get(httpclient.HeaderSalvoBatchID)
	now := time.Now()
	c.mu.Lock()
	c.inFlight[b]++
	c.starts[b] = append(c.starts[b], now)
	c.mu.Unlock()
	// The request's context ends when the handler returns or the client
	// closed the connection, whichever comes first.
	context.AfterFunc(r.Context(), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inFlight[b]--
		if c.inFlight[b] == 0 {
			c.zeroAt[b] = time.Now()
		}
	})
}

// now is the batch's calls in flight and when the last one ended.
func (c *batchCalls) now(batchID string) (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight[batchID], c.zeroAt[batchID]
}

// startedAfter is how many of the batch's calls started after at.
func (c *batchCalls) startedAfter(batchID string, at time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.starts[batchID] {
		if s.After(at) {
			n++
		}
	}
	return n
}

// requireOneResultLine reads the batch's result subject on RESULTS with an
// ordered consumer and requires exactly one message per request: as many
// distinct ids as messages, both n, each id one of reqs.
func requireOneResultLine(t *testing.T, e *env, batchID string, reqs []*lifecycle.Request) map[string]lifecycle.Result {
	t.Helper()
	msgs := e.resultMessages(t, batchID)
	total := 0
	for _, rs := range msgs {
		total += len(rs)
	}
	require.Equal(t, len(reqs), total, "result messages on %s", e.q.ResultSubject(batchID))
	require.Len(t, msgs, len(reqs), "distinct request ids among the result messages")
	out := make(map[string]lifecycle.Result, len(reqs))
	for _, r := range reqs {
		rs, ok := msgs[r.ID]
		require.True(t, ok, "no result for %s", r.ID)
		out[r.ID] = rs[0]
	}
	return out
}

// requireCountsAddUp requires that every request of b is counted in
// exactly one terminal counter and that the total is want.
func requireCountsAddUp(t testing.TB, b api.BatchObject, want int) {
	t.Helper()
	c := b.Salvo.Counts
	require.Equal(t, int64(want), c.Total, "total of %s: %+v", b.ID, c)
	require.Zero(t, c.Pending, "pending of %s: %+v", b.ID, c)
	require.Zero(t, c.InProgress, "in progress of %s: %+v", b.ID, c)
	require.Equal(t, c.Total, c.Terminal(), "terminal counters of %s sum to the total: %+v", b.ID, c)
	require.Equal(t, c.Total, b.RequestCounts.Total)
	require.Equal(t, c.Completed, b.RequestCounts.Completed)
	require.Equal(t, c.Failed+c.Expired+c.Canceled, b.RequestCounts.Failed)
}
