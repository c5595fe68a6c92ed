package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// settle finishes the delivery after a write that may have ended the
// request: publish the result when our write ended it, make sure a result
// exists when another write did, then ack.
func (x *execution) settle(res *lifecycle.Result, data []byte, tr lifecycle.Transition, err error) {
	switch {
	case errors.Is(err, lifecycle.ErrLeaseLost):
		if !errors.Is(context.Cause(x.ctx), ErrLeaseLost) { // else the heartbeat counted it
			x.w.metrics.leaseLost(x.req.Model)
		}
		x.logger().Warn().Msg("write refused: lease lost; leaving the message to its new owner")
		return
	case err != nil:
		x.logger().Error().Err(err).Msg("write failed; redelivering later")
		x.nak(storeDownDelay)
		return
	}
	if tr.Finalized != nil {
		defer x.w.batchFinalized(tr.Finalized, *x.logger())
	}
	if !tr.Applied {
		// Another write ended the request first (first terminal result
		// wins, or a soft cancel we only confirmed): its result stands.
		x.logger().Info().Str("state", string(tr.State)).Msg("request already ended; our result dropped")
		if tr.State == lifecycle.StateSuperseded && x.called {
			x.w.escalation.wasted.Add(1)
		}
		x.settleRecorded()
		return
	}
	// The request's recorded end; a racing copy is not a request of its
	// own (the escalation counters count it).
	if !x.isCopy() {
		x.w.metrics.ended(x.ctx, x.req.Model, tr.State, res.Error)
	}
	if x.isCopy() && tr.State != lifecycle.StateCompleted {
		// a racing copy that failed, or that lost to its original's end
		x.w.escalation.lost.Add(1)
		if tr.State == lifecycle.StateSuperseded && x.called {
			x.w.escalation.wasted.Add(1)
		}
	}
	// tr.State, not res.State: a copy's completion can end it superseded
	// (its original ended first), and then it publishes nothing.
	if !x.publish(res, data, tr.State) {
		x.nak(storeDownDelay)
		return
	}
	x.logEnded(res.State, res.Attempts, false)
	x.ack()
}

// settleRecorded acks the delivery of a request that ended by someone
// else's write, first publishing the recorded result if nobody did: whoever
// ended it may have died before publishing, or (a soft cancel from the
// control plane) was never going to.
func (x *execution) settleRecorded() {
	ctx, cancel := x.w.opCtx()
	rec, err := x.w.store.Request(ctx, x.req.Ref())
	cancel()
	if err != nil {
		x.logger().Error().Err(err).Msg("reading the ended request failed; redelivering later")
		x.nak(storeDownDelay)
		return
	}
	if !rec.Published {
		res, data := x.w.resultFromEnded(x.req, rec.Ended())
		if !x.publish(res, data, rec.State) {
			x.nak(storeDownDelay)
			return
		}
	}
	x.ack()
}

// settleEnded finishes a delivery whose request the claim found (or made)
// terminal: publish its result unless that already happened, then ack.
func (x *execution) settleEnded(e *lifecycle.Ended) {
	if e.Finalized != nil {
		defer x.w.batchFinalized(e.Finalized, *x.logger())
	}
	if e.Published {
		x.ack()
		return
	}
	res, data := x.w.resultFromEnded(x.req, e)
	if e.JustEnded && !x.isCopy() {
		x.w.metrics.ended(x.ctx, x.req.Model, e.State, res.Error)
	}
	if !x.publish(res, data, e.State) {
		x.nak(storeDownDelay)
		return
	}
	x.logEnded(e.State, e.Attempts, e.JustEnded)
	x.ack()
}

// publish sends the result and waits until its published mark is durable
// in Redis. A request that ends silently (silentEnd: superseded, or a
// racing copy that did not complete) publishes nothing and is only marked.
// st is the request's recorded state, which decides that (res.State can
// differ: a superseded request's stored line is its failure). Every path that ends a delivery with a result follows the same
// order — publish, mark, ack — so a message is acked only once a later
// delivery of its request (a redelivery, or a duplicate published after the
// stream's duplicate window) would find the result already out and publish
// nothing. On false the caller naks: the redelivery, well within the
// duplicate window, publishes again (deduplicated) and marks again.
// data is res already encoded, or nil.
func (x *execution) publish(res *lifecycle.Result, data []byte, st lifecycle.State) bool {
	defer x.span(spanPublish, trace.SpanKindProducer).End()
	ctx, cancel := x.w.opCtx()
	defer cancel()
	silent, err := x.silent(st)
	if err != nil {
		x.logger().Error().Err(err).Msg("publish result: redelivering later")
		return false
	}
	if err := x.w.publishLine(ctx, x.req, res, data, silent); err != nil {
		x.logger().Error().Err(err).Msg("publish result failed; redelivering later")
		return false
	}
	if err := x.w.marks.mark(ctx, x.req.Ref()); err != nil {
		x.logger().Error().Err(err).Msg("marking the result published failed; redelivering later")
		return false
	}
	return true
}

func (x *execution) ack() {
	ctx, cancel := x.w.opCtx()
	defer cancel()
	if err := x.d.Ack(ctx); err != nil {
		x.logger().Warn().Err(err).Msg("ack failed; a redelivery will find the request ended")
	}
}

func (x *execution) nak(delay time.Duration) {
	ctx, cancel := x.w.opCtx()
	defer cancel()
	if err := x.d.Nak(ctx, delay); err != nil {
		x.logger().Warn().Err(err).Msg("nak failed; AckWait will redeliver")
	}
}

// silent is silentEnd for the execution's request, with its original read
// once.
func (x *execution) silent(st lifecycle.State) (bool, error) {
	if st == lifecycle.StateSuperseded || st == lifecycle.StateCompleted {
		return st == lifecycle.StateSuperseded, nil
	}
	orig, err := x.origin()
	return orig != nil, err
}

// publishLine publishes a request's result line, unless silent: a
// superseded request, or a racing copy that did not complete, has none.
func (w *Worker) publishLine(ctx context.Context, req *lifecycle.Request, res *lifecycle.Result, data []byte, silent bool) error {
	if silent {
		return nil
	}
	if err := w.queue.PublishEncodedResult(ctx, res, data, req.ResultSubject); err != nil {
		return fmt.Errorf("worker: publish result of %s: %w", req.ID, err)
	}
	return nil
}
