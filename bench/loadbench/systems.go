package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/internal/childproc"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

const (
	prefix         = "salvo"
	requestsStream = "SALVO_REQUESTS"
	resultsStream  = "SALVO_RESULTS"
	// discoveryBucket holds the model announcements (PROTOCOL.md §1.1).
	discoveryBucket = "SALVO_DISCOVERY"
	benchModel      = "bench/model:v1"
	// asynq's own counters of the default queue (asynq internal/base).
	asynqProcessedKey = "asynq:{default}:processed"
	asynqFailedKey    = "asynq:{default}:failed"
)

// system is one system under test: salvo's worker, the minimal pipeline or asynq.
type system interface {
	name() string
	// prepare creates what must exist before requests are loaded.
	prepare(ctx context.Context, in *infra) error
	// load queues n requests (ahead of start).
	load(ctx context.Context, in *infra, n int) error
	// start starts the process(es) under test and waits until they are ready.
	start(ctx context.Context, in *infra) ([]*childproc.Child, error)
	// completed counts the requests finished so far.
	completed(ctx context.Context, in *infra) (uint64, error)
	// verify checks the end state after n requests finished.
	verify(ctx context.Context, in *infra, n int) error
}

// salvo runs `workers` cmd/worker processes with -concurrency each.
type salvo struct {
	b           bins
	concurrency int
	workers     int
	// h2c makes the worker's default route speak HTTP/2 without TLS to
	// the mock upstream (upstream.default.h2c).
	h2c bool
	// env are extra settings of the workers (SALVO_… variables).
	env []string
	// mixed loads bodies of mixed sizes (mixedBody) instead of one size.
	mixed bool
	// adaptive: the workers run adaptive concurrency; their /limits is read.
	adaptive bool
	// ports are the workers' http ports, once started.
	ports []int
}

func (s *salvo) name() string {
	if s.workers > 1 {
		return fmt.Sprintf("salvo×%d", s.workers)
	}
	return "salvo"
}

func (s *salvo) args(in *infra, httpPort int) []string {
	return []string{"-nats-url", in.natsURL, "-redis-url", "redis://" + in.redisAddr, "-upstream-url", in.mockURL,
		"-concurrency", strconv.Itoa(s.concurrency), "-http-addr", "127.0.0.1:" + strconv.Itoa(httpPort), "-log-level", "warn"}
}

func (s *salvo) prepare(ctx context.Context, in *infra) error {
	return in.p.Run(ctx, "worker -apply-streams", nil, s.b.worker, append(s.args(in, 0), "-apply-streams")...)
}

func (s *salvo) load(ctx context.Context, in *infra, n int) error {
	if s.mixed {
		return publishBodies(ctx, in, n, "r", mixedBody)
	}
	return publishRequests(ctx, in, n, "r")
}

func (s *salvo) start(ctx context.Context, in *infra) ([]*childproc.Child, error) {
	var cs []*childproc.Child
	s.ports = nil
	for i := range max(s.workers, 1) {
		port, err := childproc.FreePort()
		if err != nil {
			return cs, err
		}
		s.ports = append(s.ports, port)
		env := append([]string(nil), s.env...)
		if s.h2c {
			env = append(env, "SALVO_UPSTREAM_DEFAULT_H2C=true")
		}
		c, err := in.p.Start("worker-"+strconv.Itoa(i), env, s.b.worker, s.args(in, port)...)
		if err != nil {
			return cs, err
		}
		cs = append(cs, c)
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
		if err := childproc.WaitFor(ctx, 30*time.Second, "worker ready", c, func(ctx context.Context) error {
			return childproc.HTTPOK(ctx, url)
		}); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

func (s *salvo) completed(ctx context.Context, in *infra) (uint64, error) {
	return in.streamMsgs(ctx, resultsStream)
}

func (s *salvo) verify(ctx context.Context, in *infra, n int) error { return verifyStreams(ctx, in, n) }

// pipeline runs bench/pipeline with -handlers.
type pipeline struct {
	b        bins
	handlers int
}

func (p *pipeline) name() string { return "pipeline" }

func (p *pipeline) args(in *infra) []string {
	return []string{"-nats-url", in.natsURL, "-redis-addr", in.redisAddr, "-upstream-url", in.mockURL,
		"-handlers", strconv.Itoa(p.handlers)}
}

func (p *pipeline) prepare(ctx context.Context, in *infra) error {
	return in.p.Run(ctx, "pipeline -setup", nil, p.b.pipeline, append(p.args(in), "-setup")...)
}

func (p *pipeline) load(ctx context.Context, in *infra, n int) error {
	return publishRequests(ctx, in, n, "r")
}

func (p *pipeline) start(ctx context.Context, in *infra) ([]*childproc.Child, error) {
	c, err := in.p.Start("pipeline", nil, p.b.pipeline, p.args(in)...)
	if err != nil {
		return nil, err
	}
	// Ready once its durable consumer exists.
	return []*childproc.Child{c}, childproc.WaitFor(ctx, 30*time.Second, "pipeline ready", c, func(ctx context.Context) error {
		_, err := in.js.Consumer(ctx, requestsStream, "pipeline")
		return err
	})
}

func (p *pipeline) completed(ctx context.Context, in *infra) (uint64, error) {
	return in.streamMsgs(ctx, resultsStream)
}

func (p *pipeline) verify(ctx context.Context, in *infra, n int) error {
	return verifyStreams(ctx, in, n)
}

// asynqBase runs bench/asynqbase with -concurrency.
type asynqBase struct {
	b           bins
	concurrency int
}

func (a *asynqBase) name() string { return "asynq" }

func (a *asynqBase) prepare(context.Context, *infra) error { return nil }

func (a *asynqBase) load(ctx context.Context, in *infra, n int) error {
	return in.p.Run(ctx, "asynqbase -enqueue", nil, a.b.asynqbase,
		"-enqueue", "-n", strconv.Itoa(n), "-redis-addr", in.redisAddr, "-model", benchModel)
}

func (a *asynqBase) start(ctx context.Context, in *infra) ([]*childproc.Child, error) {
	c, err := in.p.Start("asynqbase", nil, a.b.asynqbase,
		"-redis-addr", in.redisAddr, "-upstream-url", in.mockURL, "-concurrency", strconv.Itoa(a.concurrency))
	return []*childproc.Child{c}, err
}

func (a *asynqBase) completed(ctx context.Context, in *infra) (uint64, error) {
	v, err := in.rdb.Get(ctx, asynqProcessedKey).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

func (a *asynqBase) verify(ctx context.Context, in *infra, n int) error {
	done, err := a.completed(ctx, in)
	if err != nil {
		return err
	}
	failed, err := in.rdb.Get(ctx, asynqFailedKey).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	if done != uint64(n) || failed != 0 {
		return fmt.Errorf("asynq: %d processed, %d failed; want %d and 0", done, failed, n)
	}
	return nil
}

// verifyStreams checks exactly n results and, within 10 s (acks trail the
// results), an empty request stream.
func verifyStreams(ctx context.Context, in *infra, n int) error {
	return childproc.WaitFor(ctx, 10*time.Second, "end state", nil, func(ctx context.Context) error {
		res, err := in.streamMsgs(ctx, resultsStream)
		if err != nil {
			return err
		}
		left, err := in.streamMsgs(ctx, requestsStream)
		if err != nil {
			return err
		}
		if res != uint64(n) || left != 0 {
			return fmt.Errorf("%d results and %d requests left; want %d and 0", res, left, n)
		}
		return nil
	})
}

// benchBody is request i's body: a chat completion (271-ish bytes with
// its envelope, like pkg/worker's benchmarks).
func benchBody(model string, i int) []byte {
	return fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, model, i)
}

// benchRequest is request i of a run: a batchless request with body,
// expiring in an hour.
func benchRequest(model, id string, body []byte) ([]byte, error) {
	return json.Marshal(&lifecycle.Request{
		V: lifecycle.WireVersion, ID: id, Model: model, Method: "POST", URL: "/v1/chat/completions",
		Body:      body,
		ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second),
	})
}

// requestMsg is the JetStream message of a batchless request (docs/PROTOCOL.md §3).
func requestMsg(model, id string, body []byte) (*nats.Msg, error) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return nil, err
	}
	data, err := benchRequest(model, id, body)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(prefix + ".req." + tok + "." + lifecycle.BatchlessToken)
	m.Header.Set(jetstream.MsgIDHeader, lifecycle.BatchlessToken+"."+id)
	m.Data = data
	return m, nil
}

// publishRequests publishes n requests with JetStream async publishes (at
// most 4,096 unacknowledged) and checks that the stream holds them all.
func publishRequests(ctx context.Context, in *infra, n int, idPrefix string) error {
	return publishBodies(ctx, in, n, idPrefix, benchBody)
}

// publishBodies is publishRequests with request i's body from body.
func publishBodies(ctx context.Context, in *infra, n int, idPrefix string, body func(model string, i int) []byte) error {
	var failed atomic.Int64
	js, err := jetstream.New(in.nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		return err
	}
	for i := range n {
		m, err := requestMsg(benchModel, fmt.Sprintf("%s-%07d", idPrefix, i), body(benchModel, i))
		if err != nil {
			return err
		}
		// A loaded machine stalls the async window for longer than the
		// default 200 ms; waiting is right, the publish is not measured.
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("publish: %d of %d failed", f, n)
	}
	got, err := in.streamMsgs(ctx, requestsStream)
	if err != nil {
		return err
	}
	if got != uint64(n) {
		return fmt.Errorf("publish: %s holds %d messages, want %d", requestsStream, got, n)
	}
	return nil
}
