package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/transport"
	"github.com/salvo-run/salvo/pkg/worker"
)

// The benchmarks below measure the request path of DESIGN.md §7 and three
// baselines measured in the same run, so that ratios stay meaningful on a
// noisy shared machine (docs/BENCHMARKS.md records the figures):
//
//   - BenchmarkPipeline: b.N requests already queued in JetStream, one
//     worker with H handlers: consume → claim+start (Lua) → HTTP POST to the
//     in-process mock (no latency) → complete (Lua) → publish result → ack.
//   - BenchmarkBaselineHTTP: the same b.N calls through pkg/httpclient to the
//     same mock from H goroutines; no NATS, no Redis.
//   - BenchmarkBaselineJetStream: the same b.N queued messages through the
//     pkg/queue fetch loop with H slots; the handler only acks ("ack") or
//     publishes the same result line and acks ("result+ack", the pipeline's
//     whole JetStream share).
//   - BenchmarkBaselineRedis: the pipeline's two script calls (claim+start,
//     complete with the same result line) for b.N requests from H goroutines.
//
// One op is one request, so ns/op is wall time per request and allocs/op
// (with -benchmem) counts every allocation of the test process per
// request: worker, embedded nats-server and mock upstream alike. Each reports
// req/s, the CPU time of this process per request (cpu-us/req) and, where
// Redis is involved, redis-server's CPU per request (redis-cpu-us/req).
// Setup (servers, batch creation, publishing the queued messages) is outside
// the timer. Every benchmark checks exactly-once outcomes after the timer.

const benchModel = "bench/model:v1"

var benchHandlers = []int{64, 256}

func BenchmarkPipeline(b *testing.B) {
	for _, h := range benchHandlers {
		b.Run("handlers="+strconv.Itoa(h), func(b *testing.B) { benchPipeline(b, h) })
	}
}

func BenchmarkBaselineHTTP(b *testing.B) {
	for _, h := range benchHandlers {
		b.Run("handlers="+strconv.Itoa(h), func(b *testing.B) { benchHTTP(b, h) })
	}
}

func BenchmarkBaselineJetStream(b *testing.B) {
	for _, withResult := range []bool{false, true} {
		name := "ack"
		if withResult {
			name = "result+ack"
		}
		for _, h := range benchHandlers {
			b.Run(name+"/handlers="+strconv.Itoa(h), func(b *testing.B) { benchJetStream(b, h, withResult) })
		}
	}
}

func BenchmarkBaselineRedis(b *testing.B) {
	for _, h := range benchHandlers {
		b.Run("handlers="+strconv.Itoa(h), func(b *testing.B) { benchRedis(b, h) })
	}
}

func benchPipeline(b *testing.B, handlers int) { benchPipelineWith(b, handlers, workerOpts{}) }

// benchPipelineWith is benchPipeline with the worker's telemetry in o
// (meter, tracer); its concurrency is handlers.
func benchPipelineWith(b *testing.B, handlers int, o workerOpts) {
	e := newEnv(b, envOpts{})
	const batch = "b-bench"
	reqs := e.newBatch(b, batch, benchModel, b.N, time.Hour)
	e.publish(b, reqs)
	m := e.startMeter(b)
	b.ResetTimer()
	o.cfg.Concurrency = worker.Concurrency{Default: handlers}
	e.startWorker(b, o)
	pollUntil(b, benchTimeout(b.N), "all results published", func() bool {
		return e.resultCount(b, batch) >= uint64(b.N)
	})
	b.StopTimer()
	m.report(b)

	// Exactly once: one upstream call, one result and one completed record
	// per request; the queue drained (every message acked).
	pollUntil(b, 10*time.Second, "every message acked", func() bool { return e.requestsLeft(b) == 0 })
	if got := e.resultCount(b, batch); got != uint64(b.N) {
		b.Fatalf("%d result messages, want %d", got, b.N)
	}
	if c := e.batch(b, batch).Counts; c.Completed != int64(b.N) || c.Failed != 0 {
		b.Fatalf("batch counts %+v, want %d completed", c, b.N)
	}
	if calls := e.mock.Calls(); calls != int64(b.N) {
		b.Fatalf("%d upstream calls, want %d", calls, b.N)
	}
}

func benchHTTP(b *testing.B, handlers int) {
	mock := testupstream.New(b, mockupstream.Options{})
	up := newUpstream(b, mock)
	reqs := benchRequests("b-http", b.N)
	m := startMeter(b, nil)
	b.ResetTimer()
	var next, failed atomic.Int64
	ctx := benchCtx(b, benchTimeout(b.N))
	runParallel(handlers, func() {
		for i := next.Add(1) - 1; i < int64(len(reqs)); i = next.Add(1) - 1 {
			if resp := up.Do(ctx, reqs[i], httpclient.Call{}); resp.Failure != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	m.report(b)
	if failed.Load() != 0 || mock.Calls() != int64(b.N) {
		b.Fatalf("%d failed calls, %d upstream calls, want 0 and %d", failed.Load(), mock.Calls(), b.N)
	}
}

func benchJetStream(b *testing.B, handlers int, withResult bool) {
	e := newEnv(b, envOpts{})
	const batch = "b-js"
	reqs := e.newBatch(b, batch, benchModel, b.N, time.Hour)
	sample := e.sampleResult(b, reqs[0])
	e.publish(b, reqs)
	q := e.newQueue(b, testAckWait)
	slots := queue.NewSlots(handlers)
	var acked, failed atomic.Int64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	m := startMeter(b, nil) // Redis idles here
	b.ResetTimer()
	co, err := q.Consume(ctx, queue.ConsumeOptions{
		Slots: func(string) *queue.Slots { return slots },
		Handler: func(ctx context.Context, d transport.Delivery) {
			if withResult {
				res := *sample
				req := d.Request()
				res.ID, res.CustomID, res.FinishedAt = req.ID, req.CustomID, time.Now().UTC()
				if err := q.PublishResult(ctx, &res, ""); err != nil {
					failed.Add(1)
				}
			}
			if err := d.Ack(ctx); err != nil {
				failed.Add(1)
			}
			if acked.Add(1) == int64(b.N) {
				close(done)
			}
		},
	})
	if err != nil {
		cancel()
		b.Fatalf("consume: %v", err)
	}
	select {
	case <-done:
	case <-time.After(benchTimeout(b.N)):
		b.Errorf("timed out: %d of %d acked", acked.Load(), b.N)
	}
	b.StopTimer()
	m.report(b)
	co.Stop()
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := co.Wait(wctx); err != nil {
		b.Fatalf("consumer wait: %v", err)
	}
	if failed.Load() != 0 || acked.Load() != int64(b.N) || e.requestsLeft(b) != 0 {
		b.Fatalf("%d failures, %d acked, %d left in the stream; want 0, %d, 0", failed.Load(), acked.Load(), e.requestsLeft(b), b.N)
	}
	if withResult {
		if got := e.resultCount(b, batch); got != uint64(b.N) {
			b.Fatalf("%d result messages, want %d", got, b.N)
		}
	}
}

func benchRedis(b *testing.B, handlers int) {
	e := newEnv(b, envOpts{})
	const batch = "b-redis"
	reqs := e.newBatch(b, batch, benchModel, b.N, time.Hour)
	payload, err := json.Marshal(e.sampleResult(b, reqs[0]))
	if err != nil {
		b.Fatal(err)
	}
	ctx := benchCtx(b, benchTimeout(b.N))
	var next, failed atomic.Int64
	m := e.startMeter(b)
	b.ResetTimer()
	runParallel(handlers, func() {
		for i := next.Add(1) - 1; i < int64(len(reqs)); i = next.Add(1) - 1 {
			c, err := e.store.Claim(ctx, state.ClaimArgs{Request: reqs[i], Owner: "bench", Delivery: 1, Start: true})
			if err != nil || c.Held == nil {
				failed.Add(1)
				continue
			}
			p, _ := c.Held.Processing(time.Now())
			if _, err := e.store.Complete(ctx, p, state.Outcome{Status: 200, RoutedModel: benchModel, Result: payload}); err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	m.report(b)
	if c := e.batch(b, batch).Counts; failed.Load() != 0 || c.Completed != int64(b.N) {
		b.Fatalf("%d failures, counts %+v; want 0 and %d completed", failed.Load(), c, b.N)
	}
}

// BenchmarkLatency is submit-to-result latency with one request in flight:
// publish a request (waiting for the stream's ack), wait for its result line
// on the batch's result subject. One op is one request; p50-ms and p99-ms
// summarise the distribution. make bench runs it with fewer requests.
func BenchmarkLatency(b *testing.B) {
	e := newEnv(b, envOpts{})
	const batch = "b-latency"
	reqs := e.newBatch(b, batch, benchModel, b.N, time.Hour)
	nc := e.nats.Connect()
	sub, err := nc.SubscribeSync(e.q.ResultSubject(batch))
	if err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	e.startWorker(b, workerOpts{})
	ctx := benchCtx(b, benchTimeout(b.N))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for _, r := range reqs {
		start := time.Now()
		if err := e.q.PublishRequest(ctx, r); err != nil {
			b.Fatalf("publish %s: %v", r.ID, err)
		}
		msg, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			b.Fatalf("result of %s: %v", r.ID, err)
		}
		lat = append(lat, time.Since(start))
		if got := msg.Header.Get("Nats-Msg-Id"); got != queue.MsgID(r.BatchID, r.ID) {
			b.Fatalf("result for %q, want %q", got, queue.MsgID(r.BatchID, r.ID))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

// newUpstream is the worker's HTTP client on the mock, closed at the end.
func newUpstream(b *testing.B, mock *mockupstream.Server) *httpclient.Client {
	b.Helper()
	up, err := httpclient.New(httpclient.Config{Default: &httpclient.Route{BaseURL: mock.URL()}}.WithDefaults(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(up.Close)
	return up
}

// benchRequests builds n requests shaped like newBatch's, for runs that need
// no Redis.
func benchRequests(batch string, n int) []*lifecycle.Request {
	expires := time.Now().Add(time.Hour).UTC()
	reqs := make([]*lifecycle.Request, n)
	for i := range reqs {
		reqs[i] = &lifecycle.Request{
			V: lifecycle.WireVersion, ID: fmt.Sprintf("%s-r%05d", batch, i), BatchID: batch,
			CustomID: fmt.Sprintf("task-%d", i), Model: benchModel, Method: "POST", URL: "/v1/chat/completions",
			Body:      []byte(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, benchModel, i)),
			ExpiresAt: expires,
		}
	}
	return reqs
}

// sampleResult is the result line the worker would write for req: one real
// call to the mock, shaped as the worker shapes it.
func (e *env) sampleResult(b *testing.B, req *lifecycle.Request) *lifecycle.Result {
	b.Helper()
	resp := newUpstream(b, e.mock).Do(benchCtx(b, 10*time.Second), req, httpclient.Call{})
	if resp.Failure != nil {
		b.Fatalf("sample call: %+v", resp.Failure)
	}
	now := time.Now().UTC()
	return &lifecycle.Result{
		V: lifecycle.WireVersion, ID: req.ID, CustomID: req.CustomID, BatchID: req.BatchID,
		State: lifecycle.StateCompleted, Attempts: 1, Model: req.Model, RoutedModel: req.Model,
		StartedAt: now, FinishedAt: now, DurationMS: resp.Duration.Milliseconds(),
		Response: &lifecycle.ResultResponse{StatusCode: resp.Status, RequestID: resp.RequestID, Body: resp.Body},
	}
}

// requestsLeft is the number of messages still in the REQUESTS stream (a
// work queue: an acked message is gone).
func (e *env) requestsLeft(b *testing.B) uint64 {
	b.Helper()
	ctx := benchCtx(b, 5*time.Second)
	s, err := e.js.Stream(ctx, e.q.RequestsStream())
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}

// runParallel runs fn in n goroutines and waits for all of them.
func runParallel(n int, fn func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(fn)
	}
	wg.Wait()
}

// benchTimeout bounds one run generously: a minute plus 5 ms per request.
func benchTimeout(n int) time.Duration { return time.Minute + time.Duration(n)*5*time.Millisecond }

func benchCtx(b *testing.B, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	b.Cleanup(cancel)
	return ctx
}

// pollUntil checks cond every 5 ms (fine enough for runs of a second or
// more) until it holds, failing after timeout.
func pollUntil(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	pollEvery(b, 5*time.Millisecond, timeout, what, cond)
}

// cpuMeter measures CPU spent by this process and by redis-server.
type cpuMeter struct {
	info      func(ctx context.Context) (string, error) // redis INFO cpu; nil without Redis
	proc      time.Duration
	redisSecs float64
}

func (e *env) startMeter(b *testing.B) *cpuMeter {
	b.Helper()
	return startMeter(b, func(ctx context.Context) (string, error) { return e.redis.Client.Info(ctx, "cpu").Result() })
}

func startMeter(b *testing.B, info func(ctx context.Context) (string, error)) *cpuMeter {
	b.Helper()
	m := &cpuMeter{info: info, proc: procCPU()}
	m.redisSecs = m.redisCPU(b)
	return m
}

// report adds req/s and CPU per request to the benchmark's figures.
func (m *cpuMeter) report(b *testing.B) {
	b.Helper()
	n := float64(b.N)
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(n/s, "req/s")
	}
	b.ReportMetric(float64((procCPU()-m.proc).Microseconds())/n, "cpu-us/req")
	if m.info != nil {
		b.ReportMetric((m.redisCPU(b)-m.redisSecs)*1e6/n, "redis-cpu-us/req")
	}
}

func (m *cpuMeter) redisCPU(b *testing.B) float64 {
	b.Helper()
	if m.info == nil {
		return 0
	}
	text, err := m.info(benchCtx(b, 5*time.Second))
	if err != nil {
		b.Fatalf("redis INFO cpu: %v", err)
	}
	var secs float64
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("redis INFO cpu: %s: %v", line, err)
			}
			secs += f
		}
	}
	return secs
}

// procCPU is the user+system CPU time of this process so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
