package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// onMaxDeliveries ends a message JetStream gave up redelivering: the request
// is failed in Redis (fence bumped so a late holder cannot write) and its
// result published. The queue removes the message once this returns nil.
func (w *Worker) onMaxDeliveries(ctx context.Context, req *lifecycle.Request, deliveries uint64) error {
	log := w.log.With().Str("request_id", req.ID).Str("batch_id", req.BatchID).Str("model", req.Model).
		Uint64("deliveries", deliveries).Logger()
	f := lifecycle.NewFailure(lifecycle.CodeMaxDeliveries, 0, "the message was delivered %d times without finishing", deliveries)
	res := w.buildResult(req, lifecycle.StateFailed, 0, w.clock().UTC(), f, nil)
	payload, err := encodeResult(res)
	if err != nil {
		return err
	}
	tr, err := w.store.ForceFail(ctx, req, state.Outcome{Failure: f, RoutedModel: req.Model, Result: payload})
	if err != nil {
		return fmt.Errorf("worker: fail poison request %s: %w", req.ID, err)
	}
	if tr.Finalized != nil {
		defer w.batchFinalized(tr.Finalized, log)
	}
	if !tr.Applied {
		// Ended already; make sure its recorded result was published before
		// the queue deletes the message.
		log.Info().Str("state", string(tr.State)).Msg("poison message for a request already ended")
		rec, err := w.store.Request(ctx, req.Ref())
		if err != nil {
			return fmt.Errorf("worker: read ended poison request %s: %w", req.ID, err)
		}
		if rec.Published {
			return nil
		}
		e := &state.Ended{State: rec.State, Failure: rec.Failure, Status: rec.Status, Attempts: rec.Attempt, Outbox: rec.Outbox}
		res, payload = w.resultFromEnded(req, e)
	}
	if err := w.queue.PublishEncodedResult(ctx, res, payload, req.ResultSubject); err != nil {
		return fmt.Errorf("worker: publish poison result %s: %w", req.ID, err)
	}
	w.marks.add(req.Ref())
	log.Warn().Msg("request failed after too many deliveries")
	return nil
}

// onMalformed records a malformed message's failure in Redis before the
// queue publishes its result, so the batch's counters include it and the
// batch can finish. A record that cannot be written for a reason other than
// an outage (an unreadable id, say) is skipped: the result still goes out.
func (w *Worker) onMalformed(ctx context.Context, res *lifecycle.Result) (bool, error) {
	log := w.log.With().Str("request_id", res.ID).Str("batch_id", res.BatchID).Str("model", res.Model).Logger()
	req := &lifecycle.Request{V: lifecycle.WireVersion, ID: res.ID, BatchID: res.BatchID, CustomID: res.CustomID, Model: res.Model}
	f := &lifecycle.Failure{Code: lifecycle.CodeMalformedMessage, Message: res.Error.Message}
	// Without a stored line a redelivery rebuilds the result from the record.
	payload, _ := encodeResult(res)
	tr, err := w.store.ForceFail(ctx, req, state.Outcome{Failure: f, Result: payload})
	switch {
	case errors.Is(err, state.ErrUnavailable):
		return false, fmt.Errorf("worker: record malformed %s: %w", res.ID, err)
	case err != nil:
		log.Warn().Err(err).Msg("malformed message not recorded in redis; publishing its result anyway")
		return true, nil
	}
	if tr.Finalized != nil {
		w.batchFinalized(tr.Finalized, log)
	}
	if tr.Applied {
		return true, nil
	}
	// Ended before: publish only if that end was this malformed failure
	// and its result has not gone out (a retry after a failed publish).
	rec, err := w.store.Request(ctx, req.Ref())
	if err != nil {
		return false, fmt.Errorf("worker: read malformed %s: %w", res.ID, err)
	}
	return !rec.Published && rec.Failure != nil && rec.Failure.Code == lifecycle.CodeMalformedMessage, nil
}
