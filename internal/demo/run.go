package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/state"
)

// ErrTimeout: the run did not finish within Options.Timeout.
var ErrTimeout = errors.New("demo: timed out")

// stopTimeout bounds the worker's stop at the end.
const stopTimeout = 10 * time.Second

// runner holds one run's parts and the stack of their stops.
type runner struct {
	o     Options
	out   io.Writer
	log   zerolog.Logger
	start time.Time
	stops []func()
}

// defer pushes a stop; close runs them last-in first-out.
func (r *runner) onClose(f func()) { r.stops = append(r.stops, f) }

func (r *runner) close() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
	r.stops = nil
}

func (r *runner) printf(format string, args ...any) { _, _ = fmt.Fprintf(r.out, format, args...) }

// Run runs the demo end to end and returns its summary (also printed to
// Options.Out). It is bounded by Options.Timeout and by ctx.
//
// Shutdown order (the reverse of the start, run on every return): close
// the producer's NATS connection → stop each worker (stop fetching, drain
// in-flight calls, hand the rest back; then its upstream client, Redis
// client and NATS connection) and its metrics → close the mock upstream →
// stop Redis (close the client; kill the spawned redis-server, close the
// stand-in, or delete the demo's keys from REDIS_URL) → shut down the
// embedded nats-server, or delete the demo's streams from NATS_URL →
// remove the temporary dir.
func Run(ctx context.Context, o Options) (Summary, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return Summary{}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("%w after %s", ErrTimeout, o.Timeout))
	defer cancel()
	r := &runner{o: o, out: o.Out, log: o.Logger.With().Str("component", "demo").Logger(), start: time.Now()}
	defer r.close()
	sum, err := r.run(ctx)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w (%w)", cause, err)
	}
	return sum, err
}

func (r *runner) run(ctx context.Context) (Summary, error) {
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := "demo-" + stamp
	sum := Summary{BatchID: "batch-" + stamp, Input: r.o.Input, Output: r.o.Output, Errors: r.o.Errors}

	r.printf("salvo demo\n")
	tmp, err := os.MkdirTemp("", "salvo-demo-*")
	if err != nil {
		return sum, fmt.Errorf("demo: temp dir: %w", err)
	}
	r.onClose(func() { _ = os.RemoveAll(tmp) })

	nb, err := openNATS(ctx, r.o, prefix, tmp)
	if err != nil {
		return sum, err
	}
	r.onClose(nb.stop)
	r.printf("  nats      %s\n", nb.label)

	rb, err := openRedis(ctx, r.o, prefix, tmp)
	if err != nil {
		return sum, err
	}
	r.onClose(rb.stop)
	sum.Redis, sum.StandIn = rb.label, rb.standIn
	if rb.standIn {
		r.printf("  redis     !!! %s !!!\n", StandInLabel)
		why := "no REDIS_URL and no redis-server on PATH"
		if r.o.Redis == RedisMiniredis {
			why = "asked for"
		}
		r.printf("            %s: running on an in-process miniredis at %s.\n", why, rb.addr)
		r.printf("            Fine for a demo, never for real work; install redis-server or set REDIS_URL.\n")
	} else {
		r.printf("  redis     %s\n", sum.Redis)
	}

	settings := demoSettings(nb.url, rb.url, prefix)
	store, err := state.New(rb.client, settings.StateConfig())
	if err != nil {
		return sum, err
	}
	if err := probeStore(ctx, store, "probe-"+stamp); err != nil {
		return sum, err
	}
	r.printf("            pkg/state scripts checked on it: claim, retry, fenced write, complete, fail, finalize\n")

	up, err := openUpstream(r.o)
	if err != nil {
		return sum, err
	}
	r.onClose(up.close)
	r.printf("  upstream  %s\n", up.label)
	settings.Upstream.Default = &up.route
	if err := settings.Validate(); err != nil {
		return sum, fmt.Errorf("demo: settings: %w", err)
	}
	input := r.o.Input
	if r.o.Model != "" {
		input = filepath.Join(tmp, "input.jsonl")
		if err := rewriteModel(r.o.Input, input, r.o.Model); err != nil {
			return sum, err
		}
		r.printf("  model     every request's body.model set to %q (SALVO_DEMO_MODEL)\n", r.o.Model)
	}

	workers, err := r.startWorkers(ctx, settings, up.getenv)
	if err != nil {
		return sum, err
	}

	nc, err := r.producerConn(nb.url)
	if err != nil {
		return sum, err
	}
	submitted := time.Now()
	if err := r.submit(ctx, nc, input, settings.Prefix, &sum); err != nil {
		return sum, err
	}
	if err := r.watch(ctx, nc, settings.Prefix, submitted, &sum); err != nil {
		return sum, err
	}
	if up.mock != nil {
		sum.UpstreamCalls = up.mock.Calls()
	}
	if sum.Shares, err = shares(ctx, workers); err != nil {
		return sum, err
	}
	if err := r.writeFiles(ctx, nc, input, settings.Prefix, &sum); err != nil {
		return sum, err
	}
	sum.Elapsed = time.Since(r.start)
	sum.Write(r.out)
	return sum, nil
}

// producerConn is the producer's own NATS connection.
func (r *runner) producerConn(url string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name("salvo-demo-producer"))
	if err != nil {
		return nil, fmt.Errorf("demo: producer: nats connect: %w", err)
	}
	r.onClose(nc.Close)
	return nc, nil
}
