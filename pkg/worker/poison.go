package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/transport"
)

// maxMalformedMessage bounds the error message of a malformed request's
// result.
const maxMalformedMessage = 2048

// onPoison ends a request message the queue gives up on: a malformed
// message, one JetStream stopped redelivering, or one for a model no
// worker routes. The request is failed in
// Redis (fence bumped so a late holder cannot write; the batch's counters
// include it, so the batch can finish) and its result published. The
// queue removes the message once this returns nil and reports it again
// later otherwise; a repeat finds the request ended and at most publishes
// its recorded result again, which the stream deduplicates by batch and
// request id. A malformed message without a usable id is recorded under
// lifecycle.MalformedID of its stream sequence, the same on every
// delivery and every worker.
func (w *Worker) onPoison(ctx context.Context, p transport.Poison) error {
	req := p.Request
	var unreadable string
	if p.Kind == transport.PoisonMalformed && !usableID(req.ID) {
		if p.StreamSeq == 0 {
			w.log.Error().Err(p.Cause).Str("subject", p.Subject).
				Msg("malformed request message without a readable id or stream sequence: removed without a result")
			return nil
		}
		unreadable = "no id"
		if req.ID != "" {
			unreadable = fmt.Sprintf("unusable id %q", truncate(req.ID, 64))
		}
		named := *req
		named.ID = lifecycle.MalformedID(p.StreamSeq)
		req = &named
	}
	log := w.log.With().Str("poison", string(p.Kind)).Str("request_id", req.ID).Str("batch_id", req.BatchID).
		Str("model", req.Model).Uint64("deliveries", p.Deliveries).Logger()
	switch p.Kind {
	case transport.PoisonMaxDeliveries:
		f := lifecycle.NewFailure(lifecycle.CodeMaxDeliveries, 0, "the message was delivered %d times without finishing", p.Deliveries)
		res := w.buildResult(req, lifecycle.StateFailed, w.attemptsSoFar(ctx, req, log), w.clock().UTC(), f, nil)
		return w.endPoison(ctx, req, f, res, false, log)
	case transport.PoisonUnrouted:
		f := lifecycle.NewFailure(lifecycle.CodeUnroutedModel, 0, "no upstream route for model %q on any worker", req.Model)
		res := w.buildResult(req, lifecycle.StateFailed, 0, w.clock().UTC(), f, nil)
		return w.endPoison(ctx, req, f, res, false, log)
	case transport.PoisonMalformed:
		msg := "malformed request message: " + p.Cause.Error()
		if unreadable != "" {
			msg = fmt.Sprintf("malformed request message with %s (stream sequence %d on %s), recorded as %s: %v",
				unreadable, p.StreamSeq, p.Subject, req.ID, p.Cause)
		}
		f := &lifecycle.Failure{Code: lifecycle.CodeMalformedMessage, Message: truncate(msg, maxMalformedMessage)}
		res := &lifecycle.Result{
			V: lifecycle.WireVersion, ID: req.ID, CustomID: req.CustomID, BatchID: req.BatchID, Model: req.Model,
			State: lifecycle.StateFailed, Error: &lifecycle.ResultError{Code: f.Code, Message: f.Message},
		}
		return w.endPoison(ctx, req, f, res, true, log)
	}
	return fmt.Errorf("worker: poison message of unknown kind %q", p.Kind)
}

// usableID reports whether a malformed message's id can name its request:
// present, not too long for the store, and not one MalformedID reserves.
func usableID(id string) bool {
	return id != "" && len(id) <= lifecycle.MaxIDLength && !lifecycle.ReservedID(id)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// endPoison records f as req's end and publishes res. A malformed
// message's request is only what could be read of it, which makes two
// differences:
//   - a record Redis refuses for a reason other than an outage (an id its
//     scripts reject, say) is skipped, and the result still goes out;
//   - a request that had ended before gets its recorded result published
//     only if it ended with this failure: a malformed copy does not speak
//     for a request that ended otherwise.
func (w *Worker) endPoison(ctx context.Context, req *lifecycle.Request, f *lifecycle.Failure, res *lifecycle.Result, malformed bool, log zerolog.Logger) error {
	// Stored with the record, so a repeat publishes this very line.
	payload, err := encodeResult(res)
	if err != nil {
		return err
	}
	recorded := true
	tr, err := w.store.ForceFail(ctx, req, lifecycle.Outcome{Failure: f, RoutedModel: res.RoutedModel, Result: payload})
	switch {
	case err == nil:
	case malformed && !errors.Is(err, lifecycle.ErrUnavailable) && ctx.Err() == nil:
		log.Warn().Err(err).Msg("malformed message not recorded in redis; publishing its result anyway")
		recorded = false
	default:
		return fmt.Errorf("worker: fail poison request %s: %w", req.ID, err)
	}
	if tr.Finalized != nil {
		defer w.batchFinalized(tr.Finalized, log)
	}
	st := tr.State // the recorded state decides whether a line goes out
	if recorded && !tr.Applied {
		// Ended already: make sure its recorded result was published
		// before the queue removes the message.
		rec, err := w.store.Request(ctx, req.Ref())
		if err != nil {
			return fmt.Errorf("worker: read ended poison request %s: %w", req.ID, err)
		}
		endedHere := rec.Failure != nil && rec.Failure.Code == f.Code
		if rec.Published || (malformed && !endedHere) {
			log.Info().Str("state", string(rec.State)).Msg("poison message for a request already ended")
			return nil
		}
		res, payload = w.resultFromEnded(req, rec.Ended())
		st = rec.State
	}
	silent := false
	if recorded {
		if silent, err = w.silentEnd(req.Ref(), st); err != nil {
			return fmt.Errorf("worker: poison: %w", err)
		}
	}
	if err := w.publishLine(ctx, req, res, payload, silent); err != nil {
		return fmt.Errorf("worker: poison: %w", err)
	}
	if recorded {
		// publish → mark → ack, as in settle: the queue removes the message
		// once this returns nil.
		if err := w.marks.mark(ctx, req.Ref()); err != nil {
			return fmt.Errorf("worker: mark poison result %s published: %w", req.ID, err)
		}
	}
	log.Warn().Str("code", string(f.Code)).Msg("poison request message: request failed and its result published")
	return nil
}

// attemptsSoFar reads the upstream calls already counted for a request that
// JetStream stopped redelivering, for its result's attempts (the record
// keeps the count; the failure written now adds none). A record that cannot
// be read counts 0, and the log says so.
func (w *Worker) attemptsSoFar(ctx context.Context, req *lifecycle.Request, log zerolog.Logger) int {
	rec, err := w.store.Request(ctx, req.Ref())
	if err != nil {
		if !errors.Is(err, lifecycle.ErrNotFound) {
			log.Warn().Err(err).Msg("reading the attempts of a poison request failed; its result says 0")
		}
		return 0
	}
	return rec.Attempt
}
