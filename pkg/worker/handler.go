package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// Redelivery delays used when a delivery cannot be worked on now.
const (
	storeDownDelay  = 2 * time.Second
	leaseHeldMargin = 250 * time.Millisecond
)

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
	d = settling{Delivery: d, done: func() { w.tasks.remove(t) }}

	log := w.log.With().Str("request_id", req.ID).Str("batch_id", req.BatchID).
		Str("model", req.Model).Uint64("delivery", d.NumDelivered()).Logger()

	if limit, ok := w.config().Concurrency.Global[req.Model]; ok {
		if !w.acquireGlobal(ctx, t, limit, log) {
			log.Info().Msg("waiting for a fleet-wide slot was aborted; handing the delivery back")
			w.nak(d, 0, log)
			return
		}
		defer w.releaseGlobal(t, log)
	}

	claim, err := w.claim(ctx, req, d, log)
	if err != nil {
		w.claimRefused(d, err, log)
		return
	}
	if claim.Ended != nil {
		w.settleEnded(d, req, claim.Ended, log)
		return
	}
	held := *claim.Held
	t.setHeld(held)
	log = log.With().Int("attempt", held.Attempt).Logger()
	proc, ok := held.Processing(w.clock().UTC())
	if !ok {
		log.Error().Str("state", string(held.State)).Msg("claim did not start the request; handing it back")
		w.release(d, req, held, log)
		return
	}
	w.run(ctx, d, req, proc, log)
}

// claim claims the request straight into processing. While Redis is
// unreachable it keeps trying (the heartbeat keeps the message alive), so an
// outage does not burn JetStream deliveries; it gives up when ctx ends.
func (w *Worker) claim(ctx context.Context, req *lifecycle.Request, d Delivery, log zerolog.Logger) (state.Claim, error) {
	args := state.ClaimArgs{Request: req, Owner: w.ID(), Delivery: d.NumDelivered(), Start: true}
	for n := 0; ; n++ {
		opCtx, cancel := w.opCtx()
		claim, err := w.store.Claim(opCtx, args)
		cancel()
		if err == nil || !errors.Is(err, state.ErrUnavailable) {
			return claim, err
		}
		if n == 0 {
			log.Warn().Err(err).Msg("redis unavailable; holding the delivery until it answers")
		}
		if !w.pause(ctx, n) {
			return claim, err
		}
	}
}

// record makes a terminal or requeue write, retrying while Redis is
// unreachable: the lease is ours until it expires, and giving up would make
// the next delivery wait for it and reclaim (repeating the upstream call).
// It gives up when the worker closes or after storeRetryBudget. retried
// reports that an attempt failed as unreachable — its write may have landed
// with only the reply lost.
func (w *Worker) record(log zerolog.Logger, write func(ctx context.Context) (state.Transition, error)) (tr state.Transition, retried bool, err error) {
	start := w.clock()
	for n := 0; ; n++ {
		ctx, cancel := w.opCtx()
		tr, err = write(ctx)
		cancel()
		if err == nil || !errors.Is(err, state.ErrUnavailable) || w.clock().Sub(start) > storeRetryBudget {
			return tr, retried, err
		}
		retried = true
		if n == 0 {
			log.Warn().Err(err).Msg("redis unavailable; retrying the write")
		}
		if !w.pause(w.bg, n) {
			return tr, retried, err
		}
	}
}

// recordTerminal is record for a terminal move by the holder h. When a
// retried write finds the request already in the target state under h's
// token, the first attempt landed and only its reply was lost: the move is
// ours, and if the batch is finished we may be the call that finished it,
// so its event is published (deduplicated by the stream).
func (w *Worker) recordTerminal(log zerolog.Logger, req *lifecycle.Request, h lifecycle.Held, target lifecycle.State, write func(ctx context.Context) (state.Transition, error)) (state.Transition, error) {
	tr, retried, err := w.record(log, write)
	if err != nil || tr.Applied || !retried || tr.State != target {
		return tr, err
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	rec, rerr := w.store.Request(ctx, req.Ref())
	if rerr != nil || rec.State != target || rec.Token != h.Lease.Token {
		return tr, err
	}
	log.Info().Msg("an earlier attempt of the write landed; its reply was lost")
	tr.Applied = true
	if req.BatchID != "" {
		if b, berr := w.store.Batch(ctx, req.BatchID); berr == nil && b.Status.Terminal() {
			tr.Finalized = &b
		}
	}
	return tr, nil
}

// storeRetryBudget bounds how long record retries one write.
const storeRetryBudget = 30 * time.Second

// pause waits before the n-th retry of a Redis call: 100 ms doubling to
// 5 s, ±25 %. It reports false when ctx ended first.
func (w *Worker) pause(ctx context.Context, n int) bool {
	d := min(100*time.Millisecond<<min(n, 6), 5*time.Second)
	d = lifecycle.ApplyJitter(d, 0.25, w.jitter)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// claimRefused handles a claim that did not give us the request.
func (w *Worker) claimRefused(d Delivery, err error, log zerolog.Logger) {
	var (
		held   *state.LeaseHeldError
		notYet *state.NotYetError
		delay  time.Duration
	)
	now := w.clock()
	switch {
	case errors.As(err, &held):
		delay = held.Until.Sub(now) + leaseHeldMargin
		log.Debug().Str("owner", held.Owner).Dur("delay", delay).Msg("request held by another worker")
	case errors.As(err, &notYet):
		delay = notYet.NotBefore.Sub(now)
		log.Debug().Dur("delay", delay).Msg("retry not due yet")
	default:
		delay = storeDownDelay
		log.Error().Err(err).Msg("claim failed; redelivering later")
	}
	w.nak(d, max(delay, 0), log)
}

// run executes a processing request and records its outcome.
func (w *Worker) run(ctx context.Context, d Delivery, req *lifecycle.Request, proc lifecycle.Processing, log zerolog.Logger) {
	policy := w.config().Retry
	now := w.clock()

	if !w.up.Routed(req.Model) {
		f := lifecycle.NewFailure(lifecycle.CodeUnroutedModel, 0, "no upstream route for model %q", req.Model)
		w.endHeld(d, req, proc.Held(), lifecycle.StateFailed, f, nil, false, log)
		return
	}
	// A retry never starts at or after expires_at − stop_before_deadline: a
	// nak'd message can come back later than its delay, so check again here.
	if proc.Attempt > 0 && !policy.RetryAllowedAt(now, req.ExpiresAt) {
		f := w.lastFailure(req.Ref(), log)
		f.Message += " (no retry: the deadline is too close)"
		w.endHeld(d, req, proc.Held(), lifecycle.StateFailed, f, nil, false, log)
		return
	}

	callCtx, cancelDeadline := context.WithDeadlineCause(ctx, req.ExpiresAt, errDeadline)
	defer cancelDeadline()
	resp := w.up.Do(callCtx, req, httpclient.Call{TraceParent: d.TraceParent()})
	cause := context.Cause(callCtx)

	if resp.Failure == nil {
		w.complete(d, req, proc, resp, log)
		return
	}
	if cause != nil {
		w.aborted(d, req, proc, resp, cause, log)
		return
	}
	f := resp.Failure
	dec, err := policy.Decide(lifecycle.RetryInput{
		Attempt: proc.Attempt, Failure: f, Now: w.clock(), ExpiresAt: req.ExpiresAt, RetryAfter: resp.RetryAfter,
	}, w.jitter)
	if err != nil || !dec.Retry {
		if dec.Denied != lifecycle.DenyNone && dec.Denied != lifecycle.DenyNotRetriable {
			f = &lifecycle.Failure{Code: f.Code, Status: f.Status, Message: f.Message + " (no retry: " + string(dec.Denied) + ")"}
		}
		log.Info().Str("code", string(f.Code)).Int("status", f.Status).Str("denied", string(dec.Denied)).Msg("attempt failed for good")
		w.endHeld(d, req, proc.Held(), lifecycle.StateFailed, f, resp, true, log)
		return
	}
	w.retry(d, req, proc, f, dec, log)
}

// aborted records a call that a cause cut short. Control events are hints:
// Redis holds the truth, so a cancel or supersede is recorded only when the
// store already says so; otherwise the request is handed back and runs again.
func (w *Worker) aborted(d Delivery, req *lifecycle.Request, proc lifecycle.Processing, resp *httpclient.Response, cause error, log zerolog.Logger) {
	log = log.With().AnErr("cause", cause).Logger()
	switch {
	case errors.Is(cause, ErrShutdown):
		log.Info().Msg("call aborted by shutdown; handing the request back")
		w.release(d, req, proc.Held(), log)
	case errors.Is(cause, ErrLeaseLost):
		// Another worker owns the request now: write nothing, leave the message.
		log.Warn().Msg("call aborted: lease lost; leaving the message to its new owner")
	case errors.Is(cause, ErrBatchCanceled), errors.Is(cause, ErrRequestCanceled), errors.Is(cause, ErrSuperseded):
		w.abortedByControl(d, req, proc, cause, log)
	case errors.Is(cause, errDeadline):
		f := lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the request's deadline passed during the call")
		w.endHeld(d, req, proc.Held(), lifecycle.StateExpired, f, nil, true, log)
	default:
		log.Error().Msg("call aborted for an unknown reason; handing the request back")
		w.release(d, req, proc.Held(), log)
	}
}

// abortedByControl checks a control event against Redis before recording it.
func (w *Worker) abortedByControl(d Delivery, req *lifecycle.Request, proc lifecycle.Processing, cause error, log zerolog.Logger) {
	ctx, cancel := w.opCtx()
	defer cancel()
	rec, err := w.store.Request(ctx, req.Ref())
	if err != nil {
		log.Error().Err(err).Msg("cannot check the control event against redis; handing the request back")
		w.release(d, req, proc.Held(), log)
		return
	}
	switch {
	case rec.State == lifecycle.StateSuperseded:
		// The winner marked this request superseded; the original's one
		// result comes from the winner.
		log.Info().Msg("call aborted: superseded by a racing copy")
		w.ack(d, log)
	case rec.State == lifecycle.StateCanceled:
		f := lifecycle.NewFailure(lifecycle.CodeRequestCanceled, 0, "the request was cancelled")
		w.endHeld(d, req, proc.Held(), lifecycle.StateCanceled, f, nil, true, log)
	case errors.Is(cause, ErrBatchCanceled) && req.BatchID != "" && w.batchCancelled(ctx, req.BatchID, log):
		f := lifecycle.NewFailure(lifecycle.CodeBatchCanceled, 0, "the batch was cancelled")
		w.endHeld(d, req, proc.Held(), lifecycle.StateCanceled, f, nil, true, log)
	default:
		log.Warn().Str("state", string(rec.State)).Msg("control event not backed by redis; handing the request back")
		w.release(d, req, proc.Held(), log)
	}
}

func (w *Worker) batchCancelled(ctx context.Context, batchID string, log zerolog.Logger) bool {
	b, err := w.store.Batch(ctx, batchID)
	if err != nil {
		log.Warn().Err(err).Msg("reading the batch failed")
		return false
	}
	return b.Status == lifecycle.BatchCancelling || b.Status == lifecycle.BatchCancelled || !b.CancellingAt.IsZero()
}

// complete records a successful response.
func (w *Worker) complete(d Delivery, req *lifecycle.Request, proc lifecycle.Processing, resp *httpclient.Response, log zerolog.Logger) {
	res := w.buildResult(req, lifecycle.StateCompleted, proc.Attempt+1, proc.StartedAt, nil, resp)
	payload, err := w.encode(res)
	if err != nil {
		log.Error().Err(err).Msg("encode result")
		w.release(d, req, proc.Held(), log)
		return
	}
	tr, err := w.recordTerminal(log, req, proc.Held(), lifecycle.StateCompleted, func(ctx context.Context) (state.Transition, error) {
		return w.store.Complete(ctx, proc, state.Outcome{Status: resp.Status, RoutedModel: req.Model, Result: payload})
	})
	w.settle(d, req, res, payload, tr, err, log)
}

// endHeld records a terminal state other than completed. called says
// whether this delivery made an upstream call (the result's attempts count
// calls; an unrouted request or a retry refused at the deadline made none).
func (w *Worker) endHeld(d Delivery, req *lifecycle.Request, h lifecycle.Held, to lifecycle.State, f *lifecycle.Failure, resp *httpclient.Response, called bool, log zerolog.Logger) {
	attempts := h.Attempt // upstream calls so far, this one included when it was made
	if called {
		attempts++
	}
	res := w.buildResult(req, to, attempts, time.Time{}, f, resp)
	payload, err := w.encode(res)
	if err != nil {
		log.Error().Err(err).Msg("encode result")
		w.release(d, req, h, log)
		return
	}
	o := state.Outcome{Failure: f, RoutedModel: req.Model, Result: payload}
	if resp != nil {
		o.Status = resp.Status
	}
	tr, err := w.recordTerminal(log, req, h, to, func(ctx context.Context) (state.Transition, error) {
		switch to {
		case lifecycle.StateCanceled:
			return w.store.Cancel(ctx, h, o)
		case lifecycle.StateExpired:
			return w.store.Expire(ctx, h, o)
		default:
			return w.store.Fail(ctx, h, o)
		}
	})
	w.settle(d, req, res, payload, tr, err, log)
}

// retry puts the request back to pending and naks the message with the delay.
func (w *Worker) retry(d Delivery, req *lifecycle.Request, proc lifecycle.Processing, f *lifecycle.Failure, dec lifecycle.RetryDecision, log zerolog.Logger) {
	tr, _, err := w.record(log, func(ctx context.Context) (state.Transition, error) {
		return w.store.Retry(ctx, proc, f, dec.NotBefore)
	})
	if err == nil && tr.State == lifecycle.StatePending {
		log.Info().Str("code", string(f.Code)).Int("status", f.Status).Dur("delay", dec.Delay).Msg("attempt failed, retry scheduled")
		w.nak(d, dec.Delay, log)
		return
	}
	// Not requeued: the lease was lost, Redis is down, or the request ended
	// (its batch was cancelled meanwhile, or another result came first).
	res := w.buildResult(req, tr.State, proc.Attempt+1, proc.StartedAt, endedFailure(tr.State, nil), nil)
	w.settle(d, req, res, nil, tr, err, log)
}

// release hands a held request back (pending, no attempt spent) and naks
// the message without delay so any worker can take it at once.
func (w *Worker) release(d Delivery, req *lifecycle.Request, h lifecycle.Held, log zerolog.Logger) {
	tr, _, err := w.record(log, func(ctx context.Context) (state.Transition, error) {
		return w.store.Release(ctx, h)
	})
	if err == nil && !tr.State.Terminal() {
		w.nak(d, 0, log)
		return
	}
	// Released into a cancelled batch, the store ended it; or it had ended.
	res := w.buildResult(req, tr.State, h.Attempt, time.Time{}, endedFailure(tr.State, nil), nil)
	w.settle(d, req, res, nil, tr, err, log)
}

// settle finishes a delivery after a write that may have ended the request:
// publish the result when our write ended it, make sure a result exists
// when another write did, then ack.
func (w *Worker) settle(d Delivery, req *lifecycle.Request, res *lifecycle.Result, data []byte, tr state.Transition, err error, log zerolog.Logger) {
	switch {
	case errors.Is(err, state.ErrLeaseLost):
		log.Warn().Msg("write refused: lease lost; leaving the message to its new owner")
		return
	case err != nil:
		log.Error().Err(err).Msg("write failed; redelivering later")
		w.nak(d, storeDownDelay, log)
		return
	}
	if tr.Finalized != nil {
		defer w.batchFinalized(tr.Finalized, log)
	}
	if !tr.Applied {
		// Another write ended the request first (first terminal result
		// wins, or a soft cancel we only confirmed): its result stands.
		log.Info().Str("state", string(tr.State)).Msg("request already ended; our result dropped")
		w.settleRecorded(d, req, log)
		return
	}
	if !w.publish(req, res, data, log) {
		w.nak(d, storeDownDelay, log)
		return
	}
	log.Info().Str("state", string(res.State)).Int("attempts", res.Attempts).Msg("request ended")
	w.ack(d, log)
}

// settleRecorded acks a delivery of a request that ended by someone else's
// write, first publishing the recorded result if nobody did: whoever ended
// it may have died before publishing, or (a soft cancel from the control
// plane) was never going to.
func (w *Worker) settleRecorded(d Delivery, req *lifecycle.Request, log zerolog.Logger) {
	ctx, cancel := w.opCtx()
	rec, err := w.store.Request(ctx, req.Ref())
	cancel()
	if err != nil {
		log.Error().Err(err).Msg("reading the ended request failed; redelivering later")
		w.nak(d, storeDownDelay, log)
		return
	}
	if !rec.Published {
		e := &state.Ended{State: rec.State, Failure: rec.Failure, Status: rec.Status, Attempts: rec.Attempt, Outbox: rec.Outbox}
		res, data := w.resultFromEnded(req, e)
		if !w.publish(req, res, data, log) {
			w.nak(d, storeDownDelay, log)
			return
		}
	}
	w.ack(d, log)
}

// settleEnded finishes a delivery whose request the claim found (or made)
// terminal: publish its result unless that already happened, then ack.
func (w *Worker) settleEnded(d Delivery, req *lifecycle.Request, e *state.Ended, log zerolog.Logger) {
	if e.Finalized != nil {
		defer w.batchFinalized(e.Finalized, log)
	}
	if e.Published {
		w.ack(d, log)
		return
	}
	res, data := w.resultFromEnded(req, e)
	if !w.publish(req, res, data, log) {
		w.nak(d, storeDownDelay, log)
		return
	}
	log.Info().Str("state", string(e.State)).Bool("just_ended", e.JustEnded).Msg("request ended")
	w.ack(d, log)
}

// encode encodes the result line kept in the outbox; a body too large for
// one message goes to the object store first.
func (w *Worker) encode(res *lifecycle.Result) ([]byte, error) {
	ctx, cancel := w.opCtx()
	defer cancel()
	data, err := w.queue.EncodeResult(ctx, res)
	if err != nil {
		return nil, fmt.Errorf("worker: encode result %s: %w", res.ID, err)
	}
	return data, nil
}

// publish sends the result and queues the published mark.
// data is res already encoded, or nil.
func (w *Worker) publish(req *lifecycle.Request, res *lifecycle.Result, data []byte, log zerolog.Logger) bool {
	ctx, cancel := w.opCtx()
	defer cancel()
	if err := w.queue.PublishEncodedResult(ctx, res, data, req.ResultSubject); err != nil {
		log.Error().Err(err).Msg("publish result failed; redelivering later")
		return false
	}
	w.marks.add(req.Ref())
	return true
}

// lastFailure reads the failure of the previous attempt from the record.
func (w *Worker) lastFailure(ref lifecycle.Ref, log zerolog.Logger) *lifecycle.Failure {
	ctx, cancel := w.opCtx()
	defer cancel()
	rec, err := w.store.Request(ctx, ref)
	if err != nil || rec.Failure == nil {
		if err != nil {
			log.Warn().Err(err).Msg("reading the last failure failed")
		}
		return lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the deadline is too close for another attempt")
	}
	f := *rec.Failure
	if f.Status == 0 {
		f.Status = rec.Status
	}
	return &f
}

func (w *Worker) ack(d Delivery, log zerolog.Logger) {
	ctx, cancel := w.opCtx()
	defer cancel()
	if err := d.Ack(ctx); err != nil {
		log.Warn().Err(err).Msg("ack failed; a redelivery will find the request ended")
	}
}

func (w *Worker) nak(d Delivery, delay time.Duration, log zerolog.Logger) {
	ctx, cancel := w.opCtx()
	defer cancel()
	if err := d.Nak(ctx, delay); err != nil {
		log.Warn().Err(err).Msg("nak failed; AckWait will redeliver")
	}
}
