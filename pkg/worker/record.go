package worker

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// storeRetryBudget bounds how long record retries one write.
const storeRetryBudget = 30 * time.Second

// write is one store write of an execution, made under ctx.
type write func(ctx context.Context) (lifecycle.Transition, error)

// complete records a successful response.
func (x *execution) complete(resp *httpclient.Response) {
	w, req, proc := x.w, x.req, x.proc
	res := w.buildResult(req, lifecycle.StateCompleted, proc.Attempt, proc.StartedAt, nil, resp)
	res.RoutedModel = x.routedModel()
	orig, err := x.origin()
	if err != nil {
		// The answer is lost; the redelivery calls again.
		x.logger().Error().Err(err).Msg("cannot tell whether the request is a racing copy; redelivering later")
		x.nak(storeDownDelay)
		return
	}
	if orig != nil {
		forOriginal(res, req.ID, orig)
	}
	payload, err := w.encode(res)
	if err != nil {
		x.logger().Error().Err(err).Msg("encode result")
		x.release()
		return
	}
	tr, err := x.recordTerminal(lifecycle.StateCompleted, func(ctx context.Context) (lifecycle.Transition, error) {
		return w.store.Complete(ctx, proc, lifecycle.Outcome{Status: resp.Status, RoutedModel: x.routedModel(), Result: payload})
	})
	if err == nil && tr.Superseded != "" {
		x.superseded(tr.Superseded)
	}
	x.settle(res, payload, tr, err)
}

// end records a terminal state other than completed. called says whether
// this delivery made an upstream call (the result's attempts count calls;
// an unrouted request or a retry refused at the deadline made none, and
// the attempt the claim counted is taken back).
func (x *execution) end(to lifecycle.State, f *lifecycle.Failure, resp *httpclient.Response, called bool) {
	w, req, h := x.w, x.req, x.held
	attempts := x.attempts(called)
	res := w.buildResult(req, to, attempts, time.Time{}, f, resp)
	res.RoutedModel = x.routedModel()
	payload, err := w.encode(res)
	if err != nil {
		x.logger().Error().Err(err).Msg("encode result")
		x.release()
		return
	}
	o := lifecycle.Outcome{Failure: f, RoutedModel: x.routedModel(), Result: payload, Uncalled: !called}
	if resp != nil {
		o.Status = resp.Status
	}
	tr, err := x.recordTerminal(to, func(ctx context.Context) (lifecycle.Transition, error) {
		switch to {
		case lifecycle.StateCanceled:
			return w.store.Cancel(ctx, h, o)
		case lifecycle.StateExpired:
			return w.store.Expire(ctx, h, o)
		default:
			return w.store.Fail(ctx, h, o)
		}
	})
	x.settle(res, payload, tr, err)
}

// retry puts the request back to pending and naks the message with the delay.
func (x *execution) retry(f *lifecycle.Failure, dec lifecycle.RetryDecision) {
	w, proc := x.w, x.proc
	tr, _, err := x.record(func(ctx context.Context) (lifecycle.Transition, error) {
		return w.store.Retry(ctx, proc, f, dec.NotBefore)
	})
	if err == nil && tr.State == lifecycle.StatePending {
		w.metrics.retried(x.ctx, x.req.Model, f.Code)
		x.logger().Debug().Str("code", string(f.Code)).Int("status", f.Status).Dur("delay", dec.Delay).Msg("attempt failed, retry scheduled")
		x.nak(dec.Delay)
		return
	}
	// Not requeued: the lease was lost, Redis is down, or the request ended
	// (its batch was cancelled meanwhile, or another result came first).
	res := w.buildResult(x.req, tr.State, proc.Attempt, proc.StartedAt, endedFailure(tr.State, nil), nil)
	x.settle(res, nil, tr, err)
}

// release hands the held request back to pending and naks the message
// without delay so any worker can take it at once. The attempt the claim
// counted stays counted when the call was made (even cut short: the
// upstream may have seen it) and is taken back when it was not.
func (x *execution) release() {
	w, h, called := x.w, x.held, x.called
	tr, _, err := x.record(func(ctx context.Context) (lifecycle.Transition, error) {
		return w.store.Release(ctx, h, called)
	})
	if err == nil && !tr.State.Terminal() {
		x.nak(0)
		return
	}
	// Released into a cancelled batch, the store ended it; or it had ended.
	res := w.buildResult(x.req, tr.State, x.attempts(called), time.Time{}, endedFailure(tr.State, nil), nil)
	x.settle(res, nil, tr, err)
}

// routedModel is the model the call went to: the request's, or its
// escalation model when escalateAtClaim routed it there.
func (x *execution) routedModel() string {
	if x.upstream != nil {
		return x.upstream.Model
	}
	return x.req.Model
}

// attempts is the result's attempts: the upstream attempts the claim
// counted, this one included, less this one when it made no call.
func (x *execution) attempts(called bool) int {
	if !called && x.held.State == lifecycle.StateProcessing {
		return max(x.held.Attempt-1, 0)
	}
	return x.held.Attempt
}

// record makes a terminal or requeue write, retrying while Redis is
// unreachable: the lease is ours until it expires, and giving up would make
// the next delivery wait for it and reclaim (repeating the upstream call).
// It gives up when the worker closes or after storeRetryBudget. retried
// reports that an attempt failed as unreachable — its write may have landed
// with only the reply lost.
func (x *execution) record(wr write) (tr lifecycle.Transition, retried bool, err error) {
	w := x.w
	x.task.setEnding()
	defer x.span(spanRecord, trace.SpanKindInternal).End()
	start := w.clock()
	pauses := retryBackOff(w.bg, redisPause)
	for n := 0; ; n++ {
		ctx, cancel := w.opCtx()
		tr, err = wr(ctx)
		cancel()
		if err == nil || !errors.Is(err, lifecycle.ErrUnavailable) || w.clock().Sub(start) > storeRetryBudget {
			return tr, retried, err
		}
		retried = true
		if n == 0 {
			x.logger().Warn().Err(err).Msg("redis unavailable; retrying the write")
		}
		if !pause(pauses) {
			return tr, retried, err
		}
	}
}

// recordTerminal is record for a terminal move of the held request. When a
// retried write finds the request already in the target state under our
// token, the first attempt landed and only its reply was lost: the move is
// ours, and if the batch is finished we may be the call that finished it,
// so its event is published (deduplicated by the stream).
func (x *execution) recordTerminal(target lifecycle.State, wr write) (lifecycle.Transition, error) {
	tr, retried, err := x.record(wr)
	if err != nil || tr.Applied || !retried || tr.State != target {
		return tr, err
	}
	w, req := x.w, x.req
	ctx, cancel := w.opCtx()
	defer cancel()
	rec, rerr := w.store.Request(ctx, req.Ref())
	if rerr != nil || rec.State != target || rec.Token != x.held.Lease.Token {
		return tr, err
	}
	x.logger().Info().Msg("an earlier attempt of the write landed; its reply was lost")
	tr.Applied = true
	if req.BatchID != "" {
		if b, berr := w.store.Batch(ctx, req.BatchID); berr == nil && b.Status.Terminal() {
			tr.Finalized = &b
		}
	}
	return tr, nil
}
