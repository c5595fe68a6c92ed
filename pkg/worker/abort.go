package worker

import (
	"context"
	"errors"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// aborted records a call that a cause cut short. A control cause was
// confirmed by Redis before the call was cut (control.go); the record is
// still read again before anything is written, because it is the record,
// not the event, that decides what is recorded.
func (x *execution) aborted(cause error) {
	l := x.logger().With().AnErr("cause", cause).Logger()
	x.log = &l
	switch {
	case errors.Is(cause, ErrShutdown):
		x.logger().Info().Msg("call aborted by shutdown; handing the request back")
		x.release()
	case errors.Is(cause, ErrLeaseLost):
		// Another worker owns the request now: write nothing, leave the message.
		x.logger().Warn().Msg("call aborted: lease lost; leaving the message to its new owner")
	case errors.Is(cause, ErrBatchCanceled), errors.Is(cause, ErrRequestCanceled), errors.Is(cause, ErrSuperseded):
		x.abortedByControl(cause)
	case errors.Is(cause, errDeadline):
		f := lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the request's deadline passed during the call")
		x.end(lifecycle.StateExpired, f, nil, true)
	default:
		x.logger().Error().Msg("call aborted for an unknown reason; handing the request back")
		x.release()
	}
}

// abortedByControl records a call cut by a confirmed control event as the
// record says. onControl aborted the call only after Redis backed the event,
// so the default branch is a race (the record moved in between, or the batch
// read failed): the request is handed back rather than ended on a guess.
func (x *execution) abortedByControl(cause error) {
	ctx, cancel := x.w.opCtx()
	defer cancel()
	rec, err := x.w.store.Request(ctx, x.req.Ref())
	if err != nil {
		x.logger().Error().Err(err).Msg("cannot check the control event against redis; handing the request back")
		x.release()
		return
	}
	switch {
	case rec.State == lifecycle.StateSuperseded:
		// The winner marked this request superseded; the original's one
		// result comes from the winner.
		x.logger().Info().Msg("call aborted: superseded by its racing partner")
		x.w.escalation.wasted.Add(1)
		x.ack()
	case rec.State == lifecycle.StateCanceled:
		f := lifecycle.NewFailure(lifecycle.CodeRequestCanceled, 0, "the request was cancelled")
		x.end(lifecycle.StateCanceled, f, nil, true)
	case errors.Is(cause, ErrBatchCanceled) && x.req.BatchID != "" && x.batchCancelled(ctx):
		f := lifecycle.NewFailure(lifecycle.CodeBatchCanceled, 0, "the batch was cancelled")
		x.end(lifecycle.StateCanceled, f, nil, true)
	default:
		x.logger().Warn().Str("state", string(rec.State)).Msg("record does not say cancelled or superseded after a confirmed control event; handing the request back")
		x.release()
	}
}

// batchCancelled reports whether the request's batch is being or was
// cancelled.
func (x *execution) batchCancelled(ctx context.Context) bool {
	b, err := x.w.store.Batch(ctx, x.req.BatchID)
	if err != nil {
		x.logger().Warn().Err(err).Msg("reading the batch failed")
		return false
	}
	return batchCancelled(b)
}
