package worker

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// Redelivery delays used when a delivery cannot be worked on now.
const (
	storeDownDelay  = 2 * time.Second
	leaseHeldMargin = 250 * time.Millisecond
)

// execution is one delivery on its way to its end. Handle makes one per
// delivery; its methods are the steps: claim, run and decide here, the
// store writes in record.go, publish and ack in settle.go. Two deliveries
// of the same request (a duplicate publish, a redelivery) are two
// executions. An execution belongs to its handler goroutine; what the
// heartbeat, control events and shutdown need of it is its task.
type execution struct {
	w    *Worker
	req  *lifecycle.Request
	task *task
	// d is the delivery; finishing it (ack, nak, term) takes the task out
	// of the heartbeat.
	d Delivery
	// ctx is the parent of the upstream call, cancelled with a cause by a
	// control event, a lost lease or shutdown. The execution's own writes
	// use opCtx instead, so that an aborted call can still be recorded.
	ctx context.Context
	// log is the execution's logger with the request's fields, built on
	// first use (logger): a request that runs without trouble logs
	// nothing but its sampled outcome, so most never build one.
	log *zerolog.Logger

	held lifecycle.Held       // the lease, once a claim gave us the request
	proc lifecycle.Processing // held as processing, once started
	// called is set once the upstream call is under way: the attempt the
	// claim counted is then spent, whatever comes of the call.
	called bool
	// upstream is the request as the call sends it: req, or req routed to
	// its escalation model (escalateAtClaim).
	upstream *lifecycle.Request
	// originRec is a racing copy's original (origin), read once.
	originRec  *lifecycle.Record
	originRead bool
	// tctx carries the delivery's span when tracing is on, else nil
	// (tracing.go).
	tctx context.Context
}

// Handle runs one delivery to its end. It is the queue's handler; it never
// panics on bad input and always either finishes the delivery (ack or nak)
// or deliberately leaves it alone when the lease moved to another worker.
func (w *Worker) Handle(d Delivery) {
	req := d.Request()
	ctx, cancel := context.WithCancelCause(w.calls)
	defer cancel(nil)
	t := &task{req: req, d: d, cancel: cancel}
	w.tasks.add(t)
	defer w.tasks.remove(t)
	x := &execution{
		w:    w,
		req:  req,
		task: t,
		d:    settling{Delivery: d, done: func() { w.tasks.remove(t) }},
		ctx:  ctx,
	}
	defer x.startTrace().End()
	inflight := w.metrics.labels.get(req.Model, "", "")
	w.metrics.inflight.Add(ctx, 1, inflight.add...)
	defer w.metrics.inflight.Add(context.Background(), -1, inflight.add...)

	if limit, ok := w.config().Concurrency.Global[req.Model]; ok {
		if !x.acquireGlobal(req.Model, limit) {
			x.logger().Info().Msg("waiting for a fleet-wide slot was aborted; handing the delivery back")
			x.nak(0)
			return
		}
	}
	// whichever slot the task holds at the end: the request's model's, or
	// its escalation model's (escalateAtClaim)
	defer x.releaseGlobal(*x.logger()) // logs as the slot was taken: before the claim

	span := x.span(spanClaim, trace.SpanKindInternal)
	claim, err := x.claim()
	span.End()
	if err != nil {
		x.claimRefused(err)
		return
	}
	if claim.Ended != nil {
		x.settleEnded(claim.Ended)
		return
	}
	x.held = *claim.Held
	t.setHeld(x.held)
	x.log = nil // built again with the attempt
	proc, ok := x.held.Processing(w.clock().UTC())
	if !ok {
		x.logger().Error().Str("state", string(x.held.State)).Msg("claim did not start the request; handing it back")
		x.release()
		return
	}
	x.proc = proc
	if !x.escalateAtClaim() {
		x.logger().Info().Msg("waiting for the escalation model's fleet-wide slot was aborted; handing the request back")
		x.release()
		return
	}
	x.run()
}

// logger is the execution's logger: the worker's, with the request's ids,
// its delivery and, once claimed, its attempt.
func (x *execution) logger() *zerolog.Logger {
	if x.log == nil {
		c := x.w.log.With().Str("request_id", x.req.ID).Str("batch_id", x.req.BatchID).
			Str("model", x.req.Model).Uint64("delivery", x.d.NumDelivered())
		if x.held.Attempt > 0 {
			c = c.Int("attempt", x.held.Attempt)
		}
		l := c.Logger()
		x.log = &l
	}
	return x.log
}

// logEnded logs the end of a request whose result this delivery published:
// at info for the first log_outcomes_per_second of each second, at debug
// after that. Fields go straight onto the event, so a line the level drops
// costs nothing.
func (x *execution) logEnded(st lifecycle.State, attempts int, justEnded bool) {
	lvl := zerolog.DebugLevel
	if x.w.outcomes.Sample(zerolog.InfoLevel) {
		lvl = zerolog.InfoLevel
	}
	e := x.w.log.WithLevel(lvl)
	if e == nil {
		return
	}
	e.Str("request_id", x.req.ID).Str("batch_id", x.req.BatchID).Str("model", x.req.Model).
		Uint64("delivery", x.d.NumDelivered()).Str("state", string(st)).Int("attempts", attempts)
	if x.held.Attempt > 0 {
		e.Int("attempt", x.held.Attempt)
	}
	if justEnded {
		e.Bool("just_ended", true)
	}
	e.Msg("request ended")
}

// claim claims the request straight into processing. While Redis is
// unreachable it keeps trying (the heartbeat keeps the message alive), so an
// outage does not burn JetStream deliveries; it gives up when ctx ends.
func (x *execution) claim() (lifecycle.Claim, error) {
	w := x.w
	args := lifecycle.ClaimArgs{Request: x.req, Owner: w.ID(), Delivery: x.d.NumDelivered(), Seq: x.d.StreamSeq(), Start: true}
	pauses := retryBackOff(x.ctx, redisPause)
	for n := 0; ; n++ {
		opCtx, cancel := w.opCtx()
		claim, err := w.store.Claim(opCtx, args)
		cancel()
		if err == nil || !errors.Is(err, lifecycle.ErrUnavailable) {
			return claim, err
		}
		if n == 0 {
			x.logger().Warn().Err(err).Msg("redis unavailable; holding the delivery until it answers")
		}
		if !pause(pauses) {
			return claim, err
		}
	}
}

// claimRefused handles a claim that did not give us the request.
func (x *execution) claimRefused(err error) {
	var (
		held   *lifecycle.LeaseHeldError
		notYet *lifecycle.NotYetError
		delay  time.Duration
	)
	now := x.w.clock()
	switch {
	case errors.As(err, &held):
		delay = held.Until.Sub(now) + leaseHeldMargin
		x.w.metrics.conflict(x.ctx, x.req.Model, "held")
		x.logger().Debug().Str("owner", held.Owner).Dur("delay", delay).Msg("request held by another worker")
	case errors.As(err, &notYet):
		delay = notYet.NotBefore.Sub(now)
		x.w.metrics.conflict(x.ctx, x.req.Model, "not_yet")
		x.logger().Debug().Dur("delay", delay).Msg("retry not due yet")
	case errors.Is(err, lifecycle.ErrNoBatch):
		x.noBatch()
		return
	default:
		delay = storeDownDelay
		x.logger().Error().Err(err).Msg("claim failed; redelivering later")
	}
	x.nak(max(delay, 0))
}

// run makes the upstream call of the processing request and records its
// outcome.
func (x *execution) run() {
	w := x.w
	policy := w.config().Retry
	now := w.clock()

	if !w.up.Routed(x.upstream.Model) {
		f := lifecycle.NewFailure(lifecycle.CodeUnroutedModel, 0, "no upstream route for model %q", x.upstream.Model)
		x.end(lifecycle.StateFailed, f, nil, false)
		return
	}
	// A retry never starts at or after expires_at − stop_before_deadline: a
	// nak'd message can come back later than its delay, so check again here.
	// (proc.Attempt counts this attempt: above 1, an earlier one started.)
	deadline := x.held.Deadline
	if x.proc.Attempt > 1 && !policy.RetryAllowedAt(now, deadline) {
		f := x.lastFailure()
		f.Message += " (no retry: the deadline is too close)"
		w.metrics.denied(x.ctx, x.req.Model, lifecycle.DenyDeadline)
		x.end(lifecycle.StateFailed, f, nil, false)
		return
	}

	callCtx, cancelDeadline := x.ctx, context.CancelFunc(func() {})
	if !deadline.IsZero() {
		callCtx, cancelDeadline = context.WithDeadlineCause(x.ctx, deadline, errDeadline)
	}
	defer cancelDeadline()
	if x.cancelHinted() {
		x.logger().Info().Msg("cancelled just before the call; handing the request back without calling")
		x.release()
		return
	}
	if cause := context.Cause(callCtx); cause != nil {
		// Cut before the call went out (shutdown, a control event): hand
		// the request back with its attempt taken back; the next claim
		// finds it cancelled or expired if that is what happened.
		x.logger().Info().AnErr("cause", cause).Msg("aborted before the call; handing the request back")
		x.release()
		return
	}
	call := httpclient.Call{TraceParent: x.d.TraceParent()}
	ticket, ok := x.admit(callCtx, policy, call)
	if !ok {
		return
	}
	x.called = true
	span := x.span(spanCall, trace.SpanKindClient)
	call.TraceParent = x.traceParent(span)
	resp := w.up.Do(callCtx, x.upstream, call)
	endCall(span, resp)
	w.metrics.called(x.ctx, x.upstream.Model, resp)
	ticket.Done(w.bg, ratelimit.Outcome{Called: true, Status: resp.Status, Latency: resp.Duration, Observation: resp.Limits, Body: resp.Body})
	x.task.setEnding()
	x.decide(policy, resp, context.Cause(callCtx))
}

// admit waits for the call's upstream budget and adaptive concurrency
// place (pkg/ratelimit), holding the lease (the heartbeat keeps it and the
// message) but no upstream connection. A request that cannot get its
// budget before expires_at − stop_before_deadline ends failed
// rate_limited_deadline without a call; one whose wait a cause cut short is
// handed back with its attempt taken back.
func (x *execution) admit(ctx context.Context, policy lifecycle.RetryPolicy, call httpclient.Call) (ratelimit.Ticket, bool) {
	// the budget of the model called: the escalation model's after route
	// at claim (escalateAtClaim)
	w, req := x.w, x.upstream
	var cutoff time.Time
	if !x.held.Deadline.IsZero() {
		cutoff = x.held.Deadline.Add(-policy.StopBeforeDeadline)
	}
	key := ratelimit.Key{Budget: w.up.Budget(req.Model, call), Model: req.Model}
	span, start := x.span(spanAdmit, trace.SpanKindInternal), time.Now()
	ticket, err := w.limits.Acquire(ctx, key, req.Body, cutoff)
	w.metrics.waited(ctx, req.Model, time.Since(start))
	span.End()
	switch {
	case err == nil:
		return ticket, true
	case errors.Is(err, ratelimit.ErrDeadline):
		f := lifecycle.NewFailure(lifecycle.CodeRateLimitedDeadline, 0, "%v", err)
		x.logger().Debug().Err(err).Msg("no upstream budget before the deadline; failing without a call")
		x.end(lifecycle.StateFailed, f, nil, false)
	default:
		x.logger().Info().AnErr("cause", err).Msg("aborted while waiting for upstream budget; handing the request back")
		x.release()
	}
	return ratelimit.Ticket{}, false
}

// decide records what the call came to: a success, a call a cause cut
// short, a failure for good or a retry.
func (x *execution) decide(policy lifecycle.RetryPolicy, resp *httpclient.Response, cause error) {
	if resp.Failure == nil {
		x.complete(resp)
		return
	}
	if cause != nil {
		x.aborted(cause)
		return
	}
	f := resp.Failure
	dec, err := policy.Decide(lifecycle.RetryInput{
		Attempt: x.proc.Attempt - 1, Failure: f, Now: x.w.clock(), ExpiresAt: x.held.Deadline, RetryAfter: resp.RetryAfter,
	}, x.w.jitter)
	if err != nil || !dec.Retry {
		if dec.Denied != lifecycle.DenyNone && dec.Denied != lifecycle.DenyNotRetriable {
			x.w.metrics.denied(x.ctx, x.req.Model, dec.Denied)
			f = &lifecycle.Failure{Code: f.Code, Status: f.Status, Message: f.Message + " (no retry: " + string(dec.Denied) + ")"}
		}
		x.logger().Debug().Str("code", string(f.Code)).Int("status", f.Status).Str("denied", string(dec.Denied)).Msg("attempt failed for good")
		x.end(lifecycle.StateFailed, f, resp, true)
		return
	}
	x.retry(f, dec)
}

// lastFailure reads the failure of the previous attempt from the record.
func (x *execution) lastFailure() *lifecycle.Failure {
	ctx, cancel := x.w.opCtx()
	defer cancel()
	rec, err := x.w.store.Request(ctx, x.req.Ref())
	if err != nil || rec.Failure == nil {
		if err != nil {
			x.logger().Warn().Err(err).Msg("reading the last failure failed")
		}
		return lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the deadline is too close for another attempt")
	}
	f := *rec.Failure
	if f.Status == 0 {
		f.Status = rec.Status
	}
	return &f
}
