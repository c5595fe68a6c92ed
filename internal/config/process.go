package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

// The worker declares what it needs of each client (in pkg/lifecycle and
// pkg/transport terms); these are the clients this process wires into it.
var (
	_ worker.Store    = (*state.Store)(nil)
	_ worker.Queue    = (*queue.Client)(nil)
	_ worker.Upstream = (*httpclient.Client)(nil)
	_ worker.Delivery = (*queue.Delivery)(nil)

	_ api.Store  = (*state.Store)(nil)
	_ api.Events = (*queue.Client)(nil)
	_ api.Engine = (*worker.Worker)(nil)
)

// redisPingTimeout bounds the first PING of the Redis client.
const redisPingTimeout = 5 * time.Second

// Options tune Start beyond the settings.
type Options struct {
	// Logger receives the components' logs; default disabled.
	Logger *zerolog.Logger
	// Getenv reads the API key variables the routes name; default os.Getenv.
	Getenv func(string) string
	// Name names the NATS connection; default "salvo-worker".
	Name string
	// Version is the version the batch API service announces; default
	// "dev".
	Version string
	// Meter records the worker's metrics; nil records none.
	Meter metric.MeterProvider
	// Tracer makes the worker's spans; nil (tracing off) makes none.
	Tracer trace.TracerProvider
}

// Process is a running worker: its clients, the packages built on them and
// the configs they run with. Its parts are exported for health checks and
// for the producer side of tests and the demo; Stop ends them all.
type Process struct {
	Config   Resolved
	NATS     *nats.Conn
	Redis    redis.UniversalClient
	Store    *state.Store
	Queue    *queue.Client
	Upstream *httpclient.Client
	Worker   *worker.Worker
	// API is the batch API (a NATS micro service) this process serves.
	API *api.Service

	getenv   func(string) string
	closers  []func() // run last-in first-out by Stop
	stopOnce sync.Once
	stopErr  error
}

// logger is the injected logger, or a disabled one.
func (o Options) logger() zerolog.Logger {
	if o.Logger == nil {
		return zerolog.Nop()
	}
	return *o.Logger
}

// Start builds a running worker from s. Everything is resolved first
// (validation, API key variables): invalid settings fail before any
// connection, stream, consumer or Redis key exists. Then, in order: connect
// NATS, connect and ping Redis, build the store and the queue client,
// provision the streams, build the upstream client, start the worker.
// Provisioning creates what is missing and changes nothing that exists:
// streams or consumers whose settings differ from s fail the start, naming
// each setting (errors.Is queue.ErrSettingsDiffer); ApplyStreams changes
// them.
func Start(ctx context.Context, s Settings, o Options) (*Process, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Name == "" {
		o.Name = "salvo-worker"
	}
	log := o.logger()
	r, err := s.Resolve(o.Getenv)
	if err != nil {
		return nil, err
	}
	p := &Process{Config: r, getenv: o.Getenv}
	ok := false
	defer func() {
		if !ok {
			p.closeAll()
		}
	}()

	p.NATS, err = s.NATSConfig().Connect(
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(_ *nats.Conn) { log.Info().Msg("nats reconnected") }),
	)
	if err != nil {
		return nil, natsError(err)
	}
	p.closers = append(p.closers, p.NATS.Close)

	if p.Redis, err = s.redisClient(); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { _ = p.Redis.Close() })
	pingCtx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	err = p.Redis.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return nil, s.redisError(ctx, err)
	}
	// The addresses only: no password, token or URL user is logged.
	_, notTLS := p.NATS.TLSConnectionState()
	log.Info().Str("nats", p.NATS.ConnectedUrlRedacted()).Bool("nats_tls", notTLS == nil).
		Str("redis", s.redisTarget()).Bool("redis_tls", usesTLS(p.Redis)).
		Msg("connected")
	if p.Store, err = state.New(p.Redis, r.State); err != nil {
		return nil, err
	}
	if p.Queue, err = queue.New(p.NATS, r.Queue, log); err != nil {
		return nil, err
	}
	if err := p.Queue.Provision(ctx); err != nil {
		return nil, provisionError(err)
	}
	if p.Upstream, err = httpclient.New(r.HTTP, log); err != nil {
		return nil, err
	}
	p.closers = append(p.closers, p.Upstream.Close)
	p.Worker, err = worker.New(worker.Deps{Store: p.Store, Queue: p.Queue, Upstream: p.Upstream, Logger: log,
		Meter: o.Meter, Tracer: o.Tracer}, r.Worker)
	if err != nil {
		return nil, err
	}
	if err := p.Worker.Start(ctx); err != nil {
		return nil, err
	}
	if err := p.registerReadiness(o.Meter); err != nil {
		return nil, err
	}
	p.API, err = api.New(api.Deps{Store: p.Store, Events: p.Queue, Engine: p.Worker, Logger: &log},
		api.Config{Prefix: r.Queue.Prefix, Version: o.Version})
	if err != nil {
		return nil, err
	}
	if err := p.API.Start(p.NATS); err != nil {
		_ = p.Worker.Stop(ctx)
		return nil, fmt.Errorf("batch api: %w", err)
	}
	ok = true
	return p, nil
}

// Stop stops the worker (stop fetching, drain within shutdown_grace, hand
// the rest back; bounded by ctx), then closes the upstream client, Redis
// and NATS. Safe to call twice.
func (p *Process) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		// The API first: a cancel it is finishing still has the worker.
		var apiErr error
		if p.API != nil {
			apiErr = p.API.Stop()
		}
		p.stopErr = errors.Join(p.Worker.Stop(ctx), apiErr)
		p.closeAll()
	})
	return p.stopErr
}

// StopTimeout is a bound for Stop: the shutdown grace plus time for the
// handlers to hand their requests back.
func (p *Process) StopTimeout() time.Duration { return p.Config.Worker.ShutdownGrace + 30*time.Second }

func (p *Process) closeAll() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// Reload applies what can change at runtime from s: routes, timeouts and
// keys of the upstream, the retry policy, the concurrency limits and the
// escalations.
// Invalid settings change nothing. A retry budget that changes the derived
// streams.max_deliver (or a new streams.max_deliver) is applied to every
// model consumer on the server: the reload is the deliberate change of
// that shared setting. Other keys (URLs, prefix, other streams keys, lease)
// need a restart and are not compared.
func (p *Process) Reload(ctx context.Context, s Settings) error {
	r, err := s.Resolve(p.getenv)
	if err != nil {
		return err
	}
	if err := p.Upstream.SetConfig(r.HTTP); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	if err := p.Worker.Reconfigure(r.Worker.Retry, r.Worker.Concurrency); err != nil {
		return errors.Join(errors.New("upstream config applied, engine config refused"), err)
	}
	if err := p.Worker.SetEscalations(r.Worker.Escalations); err != nil {
		return errors.Join(errors.New("upstream, retry and concurrency config applied, escalations refused"), err)
	}
	p.Config.Worker.Escalations = r.Worker.Escalations
	p.Config.HTTP, p.Config.Worker.Retry, p.Config.Worker.Concurrency = r.HTTP, r.Worker.Retry, r.Worker.Concurrency
	if n := r.Queue.MaxDeliver; n != p.Config.Queue.MaxDeliver {
		if err := p.Queue.SetMaxDeliver(ctx, n); err != nil {
			return errors.Join(errors.New("upstream and engine config applied, streams.max_deliver of the model consumers not"),
				inSection("streams", err))
		}
		p.Config.Queue.MaxDeliver = n
	}
	return nil
}
