package queue

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/transport"
)

// Handler runs one delivery, in its own goroutine. Defined in pkg/transport
// so the engine needs no NATS client.
type Handler = transport.Handler

// ConsumeOptions configure Consume. Defined in pkg/transport so the engine
// needs no NATS client.
type ConsumeOptions = transport.ConsumeOptions

// Slots is a resizable counting semaphore: the handler capacity of one
// model on one worker. Defined in pkg/transport.
type Slots = transport.Slots

// NewSlots returns a semaphore with the given limit (negative means 0).
func NewSlots(limit int) *Slots { return transport.NewSlots(limit) }

// Consumer runs the fetch loops of one worker instance: model discovery
// (discovery.go: a watch of model announcements, and the periodic listing
// of the discovery leader), one fetch loop per model on the
// model's durable pull consumer (shared by every worker), one loop on the
// max-deliveries advisories, and an orphan sweep (orphans.go) that removes
// request messages acked but left in the stream by a server shutdown.
//
// Shutdown order (the worker's side in brackets): Stop (no new messages;
// messages already received but not started are nak'd at once) → [let
// in-flight handlers finish within the grace period, Wait] → [cancel the
// rest through the ctx given to Consume; handlers release leases and nak
// without delay] → Wait → close the connection.
type Consumer struct {
	c      *Client
	o      ConsumeOptions
	log    zerolog.Logger
	stream jetstream.Stream

	handlerCtx context.Context    // Consume's ctx: handlers see its cancellation
	fetchCtx   context.Context    // canceled by Stop
	stopFetch  context.CancelFunc //
	loops      sync.WaitGroup     // discovery, advisory, orphan sweep and model loops
	running    *Slots             // handlers and malformed-message reports in progress

	mu       sync.Mutex
	models   map[string]*modelLoop // by model token
	stopped  bool
	stopOnce sync.Once

	// Model discovery (discovery.go).
	kv           jetstream.KeyValue // the DISCOVERY bucket
	id           string             // this consumer's id in the leader election
	leaderRev    uint64             // revision of the leader key while this consumer holds it; discoveryLoop only
	leader       atomic.Bool        // this consumer is the discovery leader
	listings     atomic.Int64       // listings of the REQUESTS subjects done
	discoveredAt atomic.Int64       // unix nanos of the last successful discovery tick
	watchDown    atomic.Int64       // unix nanos since the model watch is down; 0 while it runs
	// announcedAt is when the leader's listing first announced each model
	// it found unserved; such a model's messages are not rejected as
	// unrouted within the grace after it (discovery.go). discoveryLoop only.
	announcedAt map[string]time.Time
	advisory    *loopHealth
}

var _ transport.Consumer = (*Consumer)(nil)

// Consume starts consuming. It starts watching model announcements and
// lists the models with queued messages once before returning (so a
// missing stream is reported here); from then on announcements start fetch
// loops, and the discovery leader among all consumers lists the models
// every Config.DiscoveryInterval (discovery.go). Canceling ctx stops
// fetching and cancels the handlers' ctx; Stop stops fetching only.
// The consumer is a *Consumer.
func (c *Client) Consume(ctx context.Context, o ConsumeOptions) (transport.Consumer, error) {
	if o.Slots == nil || o.Handler == nil {
		return nil, fmt.Errorf("%w: ConsumeOptions.Slots and ConsumeOptions.Handler are required", ErrInvalidConfig)
	}
	stream, err := c.js.Stream(ctx, c.names.requests)
	if err != nil {
		return nil, fmt.Errorf("queue: consume: stream %s (run Provision first): %w", c.names.requests, err)
	}
	fetchCtx, stopFetch := context.WithCancel(ctx)
	co := &Consumer{
		c: c, o: o, log: c.base.With().Str("component", "queue.consumer").Logger(), stream: stream,
		handlerCtx: ctx, fetchCtx: fetchCtx, stopFetch: stopFetch,
		running: NewSlots(math.MaxInt), models: map[string]*modelLoop{},
		advisory: newLoopHealth(),
	}
	if co.o.OnPoison == nil {
		co.o.OnPoison = co.dropPoison
	}
	w, err := co.startDiscovery(fetchCtx)
	if err != nil {
		stopFetch()
		return nil, err
	}
	co.loops.Add(4)
	go co.watchLoop(w)
	go co.discoveryLoop()
	go co.advisoryLoop()
	go co.orphanLoop()
	return co, nil
}

// Stop stops fetching: no new message reaches a handler after it returns.
// Running handlers continue. Safe to call twice.
func (co *Consumer) Stop() {
	co.stopOnce.Do(func() {
		co.mu.Lock()
		co.stopped = true
		co.mu.Unlock()
		co.stopFetch()
		co.loops.Wait()
	})
}

// Wait waits until every running handler has returned, or ctx ends.
func (co *Consumer) Wait(ctx context.Context) error {
	for {
		ch := co.running.Changed()
		if co.running.InUse() == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("queue: %d handler(s) still running: %w", co.running.InUse(), context.Cause(ctx))
		}
	}
}

// Running is the number of handlers running now. No production caller
// yet: the observability issue exports it as a gauge; tests read it.
func (co *Consumer) Running() int { return co.running.InUse() }

// Models lists the models this instance has fetch loops for. No
// production caller yet: the observability issue exports it; tests read it.
func (co *Consumer) Models() []string {
	co.mu.Lock()
	defer co.mu.Unlock()
	out := make([]string, 0, len(co.models))
	for _, ml := range co.models {
		out = append(out, ml.model)
	}
	sort.Strings(out)
	return out
}

// Healthy returns nil when the connection is up, the watch of model
// announcements runs, and every loop (discovery: the leader's listing or a
// follower's election turn; advisories; each model) delivered or polled
// successfully within the last few fetch expiries; otherwise an error (errors.Is ErrUnhealthy) naming
// the stale loops and their last error. A model waiting for free slots is
// healthy. Readiness probes use it.
func (co *Consumer) Healthy() error {
	co.mu.Lock()
	stopped := co.stopped
	loops := make([]*modelLoop, 0, len(co.models))
	for _, ml := range co.models {
		loops = append(loops, ml)
	}
	co.mu.Unlock()
	if stopped {
		return fmt.Errorf("%w: %w", ErrUnhealthy, ErrStopped)
	}
	if s := co.c.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("%w: nats connection %s", ErrUnhealthy, s)
	}
	cfg := co.c.cfg
	stale := 3*cfg.FetchExpiry + 2*time.Second
	now := time.Now()
	var problems []string
	if age := now.Sub(time.Unix(0, co.discoveredAt.Load())); age > stale+3*cfg.DiscoveryInterval {
		problems = append(problems, fmt.Sprintf("discovery stale for %s", age.Round(time.Millisecond)))
	}
	if down := co.watchDown.Load(); down != 0 && now.Sub(time.Unix(0, down)) > stale {
		problems = append(problems, fmt.Sprintf("model announcements not watched for %s", now.Sub(time.Unix(0, down)).Round(time.Millisecond)))
	}
	if p := co.advisory.problem(now, stale); p != "" {
		problems = append(problems, "advisories: "+p)
	}
	for _, ml := range loops {
		if p := ml.health.problem(now, stale); p != "" {
			problems = append(problems, fmt.Sprintf("model %q: %s", ml.model, p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrUnhealthy, strings.Join(problems, "; "))
	}
	return nil
}

// dispatch hands one fetched message, whose slot is already reserved, to
// the handler in its own goroutine; the slot is released when it returns.
func (co *Consumer) dispatch(ml *modelLoop, msg jetstream.Msg) {
	if co.fetchCtx.Err() != nil {
		// Received after Stop: hand it straight back to another worker.
		_ = msg.Nak()
		ml.slots.Release(1)
		return
	}
	co.running.TryAcquire(1)
	d, err := co.c.decodeDelivery(msg)
	go func() {
		defer co.running.Release(1)
		defer ml.slots.Release(1)
		if err != nil {
			co.rejectMalformed(co.handlerCtx, msg, err)
			return
		}
		defer func() {
			if r := recover(); r != nil {
				// Left un-acked: redelivered after AckWait, bounded by MaxDeliver.
				ml.log.Error().Interface("panic", r).Str("request_id", d.req.ID).Msg("handler panicked")
			}
		}()
		co.o.Handler(co.handlerCtx, d)
	}()
}
