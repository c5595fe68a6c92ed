package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
	"github.com/salvo-run/salvo/pkg/transport"
)

// Worker runs delivered requests to their end. Create it with New, run it
// with Start and stop it with Stop.
type Worker struct {
	store Store
	queue Queue
	up    Upstream
	log   zerolog.Logger
	clock func() time.Time
	// outcomes lets log_outcomes_per_second "request ended" lines a
	// second through at info (execution.logEnded).
	outcomes *zerolog.BurstSampler

	cfgMu sync.RWMutex
	cfg   Config

	randMu sync.Mutex
	rand   *rand.Rand

	slotsMu sync.Mutex
	slots   map[string]*transport.Slots

	tasks *inflight
	marks *marker
	// limits admits upstream calls against the fleet's budgets.
	limits  *ratelimit.Limiter
	slotSeq atomic.Uint64

	// calls is the parent of every upstream call; aborting it cancels all
	// of them with ErrShutdown.
	calls      context.Context
	abortCalls context.CancelCauseFunc
	// bg is for the worker's own Redis and NATS writes; it outlives the
	// calls so that aborted requests can still be handed back.
	bg     context.Context
	stopBg context.CancelFunc

	startOnce, stopOnce sync.Once
	consumer            transport.Consumer
	stopControl         func() error
	loops               sync.WaitGroup

	// controlChecks bounds the Redis reads that control events have
	// running at once (control.go); checking waits for them at stop.
	// events tracks the goroutines publishing final batch events (onFinal).
	events sync.WaitGroup

	controlChecks chan struct{}
	checking      sync.WaitGroup
	// hints are the recent cancel events, checked before a call starts.
	hints cancelHints
	// escalation counts what escalation did here (escalation.go).
	escalation escalationStats

	// metrics are the worker's instruments (metrics.go); tracer is nil
	// when tracing is off (tracing.go).
	metrics *metrics
	tracer  trace.Tracer
}

// Deps are the worker's collaborators.
type Deps struct {
	Store    Store
	Queue    Queue
	Upstream Upstream
	Logger   zerolog.Logger
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Seed seeds the jitter source; 0 picks a random seed.
	Seed uint64
	// Meter records the worker's metrics; nil records nothing.
	Meter metric.MeterProvider
	// Tracer makes the worker's spans; nil (the default) makes none and
	// passes the producer's traceparent upstream unchanged.
	Tracer trace.TracerProvider
}

// New builds a worker. cfg is completed with defaults and validated.
func New(deps Deps, cfg Config) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker: config: %w", err)
	}
	if deps.Store == nil || deps.Queue == nil || deps.Upstream == nil {
		return nil, errors.New("worker: Store, Queue and Upstream are required")
	}
	clock := deps.Clock
	if clock == nil {
		clock = time.Now
	}
	seed := deps.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	var err error
	w := &Worker{
		store: deps.Store,
		queue: deps.Queue,
		up:    deps.Upstream,
		log:   deps.Logger.With().Str("component", "worker").Str("worker_id", cfg.ID).Logger(),
		clock: clock,
		cfg:   cfg,
		rand:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		slots: make(map[string]*transport.Slots),
		tasks: newInflight(),

		outcomes: &zerolog.BurstSampler{Burst: uint32(cfg.LogOutcomes), Period: time.Second},

		controlChecks: make(chan struct{}, controlChecksMax),
	}
	perPod := cfg.Concurrency.Limit
	if w.limits, err = ratelimit.New(cfg.RateLimits, deps.Store, clock, perPod, w.log); err != nil {
		return nil, fmt.Errorf("worker: config: %w", err)
	}
	w.limits.OnHold(w.announceHold)
	if w.metrics, err = newMetrics(deps.Meter, w.limits, &w.escalation, configuredModels(cfg, deps.Upstream)); err != nil {
		return nil, fmt.Errorf("worker: metrics: %w", err)
	}
	if deps.Tracer != nil {
		w.tracer = deps.Tracer.Tracer(tracerName)
	}
	w.bg, w.stopBg = context.WithCancel(context.Background())
	w.calls, w.abortCalls = context.WithCancelCause(w.bg)
	w.marks = newMarker(w.store, cfg.MarkFlushInterval, cfg.OpTimeout, w.log, w.onFinal)
	return w, nil
}

// Limits is what the worker knows of each upstream key × model's budgets
// and adaptive concurrency limit (for a status endpoint).
func (w *Worker) Limits() []ratelimit.KeyStatus { return w.limits.Status() }

// ID is the worker's instance id (its lease owner name).
func (w *Worker) ID() string { return w.config().ID }

func (w *Worker) config() Config {
	w.cfgMu.RLock()
	defer w.cfgMu.RUnlock()
	return w.cfg
}

// Reconfigure applies a new retry policy and concurrency limits at runtime.
// Limits of models already running change at once: a lowered limit lets the
// surplus calls finish and fetches nothing until usage is below it.
func (w *Worker) Reconfigure(retry lifecycle.RetryPolicy, conc Concurrency) error {
	retry = retry.WithDefaults()
	if conc.Default == 0 {
		conc.Default = ConcurrencyDefault
	}
	if err := retry.Validate(); err != nil {
		return fmt.Errorf("worker: reconfigure: %w", err)
	}
	if err := conc.Validate(); err != nil {
		return fmt.Errorf("worker: reconfigure: %w", err)
	}
	w.cfgMu.Lock()
	w.cfg.Retry = retry
	w.cfg.Concurrency = conc
	w.cfgMu.Unlock()
	w.slotsMu.Lock()
	for model, s := range w.slots {
		s.SetLimit(conc.Limit(model))
	}
	w.slotsMu.Unlock()
	w.limits.SetPerPod(conc.Limit)
	w.log.Info().Int("default_limit", conc.Default).Int("models", len(conc.Models)).Msg("configuration reloaded")
	return nil
}

// slotsFor returns the per-pod capacity of model, created on first use.
func (w *Worker) slotsFor(model string) *transport.Slots {
	w.slotsMu.Lock()
	defer w.slotsMu.Unlock()
	s, ok := w.slots[model]
	if !ok {
		s = transport.NewSlots(w.config().Concurrency.Limit(model))
		w.slots[model] = s
	}
	return s
}

func (w *Worker) jitter() float64 {
	w.randMu.Lock()
	defer w.randMu.Unlock()
	return w.rand.Float64()
}

// opCtx bounds one of the worker's own writes. It derives from bg, not from
// the call, so that an aborted call can still be recorded.
func (w *Worker) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(w.bg, w.config().OpTimeout)
}

// Start subscribes to control events, starts the heartbeat and the fetch
// loops, and returns. ctx bounds only the start itself.
func (w *Worker) Start(ctx context.Context) error {
	err := errors.New("worker: already started")
	w.startOnce.Do(func() { err = w.start(ctx) })
	return err
}

func (w *Worker) start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	stop, err := w.queue.SubscribeControl(w.onControl)
	if err != nil {
		return fmt.Errorf("worker: subscribe control: %w", err)
	}
	w.stopControl = stop
	w.loops.Add(3)
	go func() { defer w.loops.Done(); w.heartbeat() }()
	go func() { defer w.loops.Done(); w.marks.run(w.bg) }()
	go func() { defer w.loops.Done(); w.sweepLoop() }()
	// The fetch loops live until Stop, not as long as ctx (which bounds the
	// start only): they run under bg.
	consumer, err := w.queue.Consume(w.bg, transport.ConsumeOptions{
		Slots:    w.slotsFor,
		Handler:  func(_ context.Context, d transport.Delivery) { w.Handle(d) },
		Routable: w.up.Routed,
		OnPoison: w.onPoison,
	})
	if err != nil {
		_ = stop()
		w.stopBg()
		w.checking.Wait()
		w.loops.Wait()
		return fmt.Errorf("worker: consume: %w", err)
	}
	w.consumer = consumer
	if r, ok := consumer.(transport.LagReporter); ok {
		w.loops.Add(1)
		go func() { defer w.loops.Done(); w.lagLoop(r) }()
	}
	w.log.Info().Msg("worker started")
	return nil
}

// Healthy reports whether the fetch loops are alive (for readiness).
func (w *Worker) Healthy() error {
	if w.consumer == nil {
		return errors.New("worker: not started")
	}
	return w.consumer.Healthy()
}

// InFlight is the number of deliveries the worker is working on.
func (w *Worker) InFlight() int { return w.tasks.len() }

// Stop shuts the worker down; safe to call twice. The order matters:
//
//  1. Stop fetching: no new delivery reaches a handler.
//  2. Drain: in-flight calls get ShutdownGrace to finish normally; their
//     results are recorded, published and acked as usual.
//  3. Abort: calls still running are canceled with ErrShutdown. Their
//     handlers release the lease (request back to pending, no attempt spent)
//     and nak without delay, so another pod takes them at once.
//  4. Wait for every handler to return (bounded by ctx).
//  5. Stop the control subscription (and wait for the control events being
//     checked against Redis), the heartbeat and the publish marks
//     (flushing what is left).
//
// The caller closes the NATS and Redis clients afterwards.
func (w *Worker) Stop(ctx context.Context) error {
	var err error
	w.stopOnce.Do(func() { err = w.stop(ctx) })
	return err
}

func (w *Worker) stop(ctx context.Context) error {
	if w.consumer == nil {
		w.stopBg()
		w.loops.Wait()
		return nil
	}
	w.consumer.Stop() // 1
	// Deliveries not yet claimed (waiting for a fleet-wide slot, or for
	// Redis) have no call to finish: hand them back now, not after the grace.
	w.tasks.cancel(func(t *task) bool { h, _ := t.snapshot(); return h == nil }, ErrShutdown)
	grace := w.config().ShutdownGrace
	drainCtx, cancel := context.WithTimeout(ctx, grace)
	drained := w.consumer.Wait(drainCtx) // 2
	cancel()
	if drained != nil {
		n := w.tasks.len()
		w.log.Warn().Int("in_flight", n).Dur("grace", grace).Msg("grace period over, handing in-flight requests back")
		w.abortCalls(ErrShutdown) // 3
	}
	err := w.consumer.Wait(ctx) // 4
	if w.stopControl != nil {   // 5
		if cerr := w.stopControl(); cerr != nil {
			w.log.Warn().Err(cerr).Msg("control unsubscribe failed")
		}
	}
	w.stopBg()
	w.checking.Wait()
	w.loops.Wait()
	w.events.Wait()
	w.log.Info().Msg("worker stopped")
	if err != nil {
		return fmt.Errorf("worker: stop: %w", err)
	}
	return nil
}

// configuredModels are the model names the config names: routes of their
// own, limits, budgets and escalations (their metric labels are pinned).
func configuredModels(cfg Config, up Upstream) []string {
	var out []string
	if r, ok := up.(interface{ RouteModels() []string }); ok {
		out = append(out, r.RouteModels()...)
	}
	for _, m := range []map[string]int{cfg.Concurrency.Models, cfg.Concurrency.Global} {
		out = slices.AppendSeq(out, maps.Keys(m))
	}
	out = slices.AppendSeq(out, maps.Keys(cfg.RateLimits.Budgets))
	for m, e := range cfg.Escalations {
		out = append(out, m, e.Model)
	}
	return out
}
