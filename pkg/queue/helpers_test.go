package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

// testConfig uses short timers so redelivery tests stay fast. The orphan
// sweep runs often, so every poison test also checks that it leaves poison
// messages to the advisory loop.
func testConfig() queue.Config {
	return queue.Config{
		AckWait:             time.Second,
		FetchExpiry:         time.Second,
		DiscoveryInterval:   50 * time.Millisecond,
		PublishTimeout:      5 * time.Second,
		OrphanSweepInterval: 200 * time.Millisecond,
	}
}

type bundle struct {
	srv *testnats.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	c   *queue.Client
	cfg queue.Config
}

// setup starts a server, connects, builds and provisions a client.
func setup(t *testing.T, mods ...func(*queue.Config)) *bundle {
	t.Helper()
	cfg := testConfig()
	for _, m := range mods {
		m(&cfg)
	}
	srv := testnats.New(t)
	b := &bundle{srv: srv, cfg: cfg}
	b.nc = srv.Connect()
	b.c = newClient(t, b.nc, cfg)
	require.NoError(t, b.c.Provision(ctx(t)))
	js, err := jetstream.New(b.nc)
	require.NoError(t, err)
	b.js = js
	return b
}

func newClient(t *testing.T, nc *nats.Conn, cfg queue.Config) *queue.Client {
	t.Helper()
	c, err := queue.New(nc, cfg, testLogger(t))
	require.NoError(t, err)
	return c
}

// ctx is a test context with a generous deadline.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// testLogger writes warnings and errors to t.Log until the test ends; later
// lines (from goroutines still stopping) are dropped, not a panic.
func testLogger(t *testing.T) zerolog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return zerolog.New(w).Level(zerolog.WarnLevel)
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func newRequest(id, model, batch string) *lifecycle.Request {
	return &lifecycle.Request{
		V: lifecycle.WireVersion, ID: id, BatchID: batch, CustomID: "c-" + id, Model: model,
		Method: "POST", URL: "/v1/chat/completions", Body: json.RawMessage(`{"messages":[]}`),
		ExpiresAt: time.Now().Add(time.Hour).UTC(),
	}
}

// publishN publishes n requests id-0..id-(n-1) through an async publisher.
func publishN(t *testing.T, c *queue.Client, prefix, model, batch string, n int) []string {
	t.Helper()
	p := c.NewPublisher()
	ids := make([]string, n)
	for i := range n {
		ids[i] = prefix + "-" + itoa(i)
		require.NoError(t, p.Publish(ctx(t), newRequest(ids[i], model, batch)))
	}
	require.NoError(t, p.Flush(ctx(t)))
	return ids
}

func itoa(i int) string { return strconv.Itoa(i) }

// streamMsgs is the number of messages stored in a stream.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx(t), name)
	require.NoError(t, err)
	info, err := s.Info(ctx(t))
	require.NoError(t, err)
	return info.State.Msgs
}

// slotsFor returns a ConsumeOptions.Slots function with one fixed-limit
// Slots per model, created on first use.
type slotTable struct {
	mu    sync.Mutex
	limit int
	m     map[string]*queue.Slots
}

func newSlotTable(limit int) *slotTable {
	return &slotTable{limit: limit, m: map[string]*queue.Slots{}}
}

func (s *slotTable) get(model string) *queue.Slots {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[model] == nil {
		s.m[model] = queue.NewSlots(s.limit)
	}
	return s.m[model]
}

// consume starts a consumer stopped and drained at cleanup.
func consume(t *testing.T, c *queue.Client, o queue.ConsumeOptions) *queue.Consumer {
	t.Helper()
	cctx, cancel := context.WithCancel(context.Background())
	co, err := c.Consume(cctx, o)
	require.NoError(t, err)
	t.Cleanup(func() {
		co.Stop()
		cancel()
		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer wcancel()
		require.NoError(t, co.Wait(wctx))
	})
	return co.(*queue.Consumer)
}

// idSet is a concurrency-safe set of request ids with a count of adds.
type idSet struct {
	mu   sync.Mutex
	seen map[string]int
}

func newIDSet() *idSet { return &idSet{seen: map[string]int{}} }

func (s *idSet) add(id string) {
	s.mu.Lock()
	s.seen[id]++
	s.mu.Unlock()
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *idSet) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}

const eventually = 20 * time.Second
const tick = 20 * time.Millisecond

// waitFor checks cond on the test goroutine every tick until it holds,
// failing the test after timeout. cond may use require.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(tick)
	defer poll.Stop()
	for ; !cond(); <-poll.C {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// holds checks cond on the test goroutine every interval for d, failing
// the test the first time it does not hold. cond may use require.
func holds(t *testing.T, d, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	poll := time.NewTicker(interval)
	defer poll.Stop()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); <-poll.C {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
	}
}

// streamEmpty reports whether a stream stores no message.
func streamEmpty(t *testing.T, js jetstream.JetStream, name string) func() bool {
	return func() bool { return streamMsgs(t, js, name) == 0 }
}

// keepInProgress sends InProgress every interval until stop is called, as
// the worker's heartbeat does. stop waits for the ticker to end.
func keepInProgress(ctx context.Context, d transport.Delivery, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = d.InProgress(ctx) // a failure is retried at the next tick
			}
		}
	}()
	return func() { cancel(); <-done }
}

// poisonLog is an OnPoison that records every report; while fail is set
// it refuses them.
type poisonLog struct {
	mu    sync.Mutex
	got   []queue.Poison
	calls atomic.Int32
	fail  atomic.Bool
}

func (l *poisonLog) hook(_ context.Context, p queue.Poison) error {
	l.calls.Add(1)
	if l.fail.Load() {
		return errors.New("redis down")
	}
	l.mu.Lock()
	l.got = append(l.got, p)
	l.mu.Unlock()
	return nil
}

// all returns the accepted reports in order.
func (l *poisonLog) all() []queue.Poison {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// byID returns the last accepted report of each request id.
func (l *poisonLog) byID() map[string]queue.Poison {
	out := map[string]queue.Poison{}
	for _, p := range l.all() {
		out[p.Request.ID] = p
	}
	return out
}

// publishRaw stores a raw message on subj (Nats-Msg-Id = id when set),
// bypassing the Publisher's validation, as a foreign client could.
func (b *bundle) publishRaw(t *testing.T, subj, id, body string) {
	t.Helper()
	m := nats.NewMsg(subj)
	m.Data = []byte(body)
	if id != "" {
		m.Header.Set("Nats-Msg-Id", id)
	}
	_, err := b.js.PublishMsg(ctx(t), m)
	require.NoError(t, err)
}
