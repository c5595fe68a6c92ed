package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Escalation near the deadline (Config.Escalations): a request of a model
// with an escalation, whose deadline is less than the threshold away, is
//
//   - routed (mode route): claimed inside the threshold, its call goes to
//     the escalation model — body "model" rewritten, the escalation
//     model's route and key — and its record and result say routed_model;
//   - raced (mode race): a racing copy on the escalation model is started,
//     at claim for a request claimed inside the threshold, and by the
//     sweep for requests in flight when their batch gets inside it
//     (sweep.go). The first completed wins (finish.lua); the loser is
//     superseded and its call aborted through a supersede event. The copy
//     publishes nothing unless it wins; then it publishes the original's
//     line (the original's id and custom_id, escalation_id = the copy's
//     id, routed_model = the escalation model).
//
// A superseded request never publishes a line of its own, whoever finds it
// superseded (its call's abort, a redelivery, the sweep): its winner's
// line is its result.

// escalationStats counts what escalation did on this worker.
type escalationStats struct {
	routed, started, won, lost, wasted atomic.Int64
}

// EscalationStats is what escalation did on this worker since it started.
type EscalationStats struct {
	// Routed counts requests sent to their escalation model at claim.
	Routed int64 `json:"routed"`
	// Started counts racing copies this worker started (at claim or by
	// the sweep).
	Started int64 `json:"started"`
	// Won counts racing copies run here that completed first.
	Won int64 `json:"won"`
	// Lost counts racing copies run here that ended without winning (the
	// original ended first, or the copy failed).
	Lost int64 `json:"lost"`
	// WastedCalls counts upstream calls made here whose answer was dropped
	// because their request was superseded (aborted, or ended after).
	WastedCalls int64 `json:"wasted_calls"`
}

// EscalationStats returns this worker's escalation counts.
func (w *Worker) EscalationStats() EscalationStats {
	s := &w.escalation
	return EscalationStats{Routed: s.routed.Load(), Started: s.started.Load(), Won: s.won.Load(),
		Lost: s.lost.Load(), WastedCalls: s.wasted.Load()}
}

// SetEscalations applies new escalations at runtime (a reload). Requests
// already claimed keep the decision their claim made.
func (w *Worker) SetEscalations(e Escalations) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("worker: reconfigure: %w", err)
	}
	e = e.WithDefaults()
	w.cfgMu.Lock()
	w.cfg.Escalations = e
	w.cfgMu.Unlock()
	w.log.Info().Int("escalations", len(e)).Msg("escalations reloaded")
	return nil
}

// escalateAtClaim decides, once the claim started the request, whether it
// is a racing copy (its result line then speaks for its original) and
// whether the time left before its deadline escalates it. A request routed
// to its escalation model trades the requested model's fleet-wide slot for
// the escalation model's; false when waiting for that slot was aborted
// (the caller hands the request back).
func (x *execution) escalateAtClaim() bool {
	w, req := x.w, x.req
	x.upstream = req
	switch orig, err := x.origin(); {
	case err != nil:
		x.logger().Warn().Err(err).Msg("cannot tell whether the request is a racing copy; handing it back")
		return false
	case orig != nil:
		return true // a copy: never escalated again (no chains)
	}
	esc, ok := w.config().Escalations.near(req.Model, x.held.Deadline, w.clock())
	if !ok {
		return true
	}
	switch esc.Mode {
	case EscalateRoute:
		routed, err := withModel(req, esc.Model)
		if err != nil {
			x.logger().Warn().Err(err).Str("escalation_model", esc.Model).Msg("cannot rewrite the body for escalation; calling the requested model")
			return true
		}
		// the fleet-wide limit is the escalation model's (the per-pod slot
		// stays the requested model's consumer's)
		x.releaseGlobal(*x.logger())
		if limit, ok := w.config().Concurrency.Global[esc.Model]; ok && !x.acquireGlobal(esc.Model, limit) {
			return false
		}
		x.upstream = routed
		w.escalation.routed.Add(1)
		x.logger().Info().Str("escalation_model", esc.Model).Time("deadline", x.held.Deadline).
			Msg("inside the escalation threshold: routed to the escalation model")
	case EscalateRace:
		ctx, cancel := w.opCtx()
		defer cancel()
		w.startCopy(ctx, req, esc.Model, *x.logger())
	}
	return true
}

// startCopy starts the racing copy of req on model: the store first (the
// copy's record, which the copy's delivery needs to be recognised as
// one), then the copy's message. A copy whose message cannot be published
// is ended failed at once, so its batch does not wait for it.
func (w *Worker) startCopy(ctx context.Context, req *lifecycle.Request, model string, log zerolog.Logger) bool {
	started, reason, err := w.store.Escalate(ctx, req.Ref(), model)
	if err != nil {
		log.Warn().Err(err).Msg("starting a racing copy failed")
		return false
	}
	if !started {
		log.Debug().Str("reason", reason).Msg("no racing copy started")
		return false
	}
	cp, err := withModel(req, model)
	if err == nil {
		cp.ID, _ = lifecycle.CopyID(req.ID)
		err = w.queue.PublishRequest(ctx, cp)
	}
	if err != nil {
		log.Error().Err(err).Msg("publishing the racing copy failed; ending the copy")
		if cp != nil {
			o := lifecycle.Outcome{Failure: lifecycle.NewFailure(lifecycle.CodeTaskTerminated, 0, "the copy's message could not be published: %v", err)}
			if _, ferr := w.store.ForceFail(ctx, cp, o); ferr != nil {
				log.Error().Err(ferr).Msg("ending the unpublished copy failed; its batch waits for it until it expires")
			}
		}
		return false
	}
	w.escalation.started.Add(1)
	log.Info().Str("copy_id", cp.ID).Str("escalation_model", model).Msg("racing copy started")
	return true
}

// withModel returns a copy of req for model: the envelope's model and the
// body's top-level "model" (only that field; a body without one stays
// without one, as the request's own would).
func withModel(req *lifecycle.Request, model string) (*lifecycle.Request, error) {
	cp := *req
	cp.Model = model
	if len(bytes.TrimSpace(req.Body)) == 0 {
		return &cp, nil
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return nil, fmt.Errorf("worker: escalate %s: body: %w", req.ID, err)
	}
	if _, ok := body["model"]; !ok {
		return &cp, nil
	}
	m, err := json.Marshal(model)
	if err != nil {
		return nil, fmt.Errorf("worker: escalate %s: %w", req.ID, err)
	}
	body["model"] = m
	if cp.Body, err = json.Marshal(body); err != nil {
		return nil, fmt.Errorf("worker: escalate %s: body: %w", req.ID, err)
	}
	return &cp, nil
}

// origin is, for a racing copy, its original's record (read once, and only
// for an id of the copy's form); nil for any other request. An error means
// Redis did not answer: whether the request is a copy is not known, and
// the caller must not act as if it were not (it hands the delivery back).
func (x *execution) origin() (*lifecycle.Record, error) {
	if !x.originRead {
		rec, err := x.w.originOf(x.req.Ref())
		if err != nil {
			return nil, err
		}
		x.originRead, x.originRec = true, rec
	}
	return x.originRec, nil
}

// isCopy is origin() != nil, for the counters only: a read error counts as
// not a copy.
func (x *execution) isCopy() bool {
	orig, _ := x.origin()
	return orig != nil
}

// originOf reads the original of a racing copy's ref; nil when ref is not
// a copy (not the copy's id form, or no original names it), an error when
// Redis did not answer.
func (w *Worker) originOf(ref lifecycle.Ref) (*lifecycle.Record, error) {
	orig, ok := lifecycle.OriginalID(ref.ID)
	if !ok || ref.BatchID == "" {
		return nil, nil
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	rec, err := w.store.Request(ctx, lifecycle.Ref{ID: orig, BatchID: ref.BatchID})
	switch {
	case errors.Is(err, lifecycle.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("worker: read the original of %s: %w", ref.ID, err)
	case rec.EscalatedTo != ref.ID:
		return nil, nil
	}
	return &rec, nil
}

// forOriginal turns a racing copy's result line into its original's: the
// original's id and model, the copy's id as escalation_id, the copy's
// model as routed_model.
func forOriginal(res *lifecycle.Result, copyID string, orig *lifecycle.Record) {
	res.EscalationID = copyID
	res.RoutedModel = res.Model
	res.ID = orig.Ref.ID
	res.Model = orig.Model
}

// silentEnd reports whether a request that ended in state st publishes no
// line of its own: a superseded request (its winner's line is its result),
// and a racing copy that did not complete (a failure never wins; nothing
// is published for it).
func (w *Worker) silentEnd(ref lifecycle.Ref, st lifecycle.State) (bool, error) {
	if st == lifecycle.StateSuperseded || st == lifecycle.StateCompleted {
		return st == lifecycle.StateSuperseded, nil
	}
	orig, err := w.originOf(ref)
	return orig != nil, err
}

// superseded follows a completion that superseded its racing partner:
// count it, and publish the supersede event that aborts the partner's call
// wherever it runs (Redis already says superseded; a lost event only
// delays the abort: the partner's next write is refused).
func (x *execution) superseded(partner string) {
	w := x.w
	if x.isCopy() {
		w.escalation.won.Add(1)
	} else {
		// the original won: its copy, wherever it runs, lost
		w.escalation.lost.Add(1)
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	if err := w.queue.PublishSupersede(ctx, partner, x.req.ID); err != nil {
		x.logger().Warn().Err(err).Str("superseded", partner).Msg("publishing the supersede event failed; the loser's call runs to its end")
		return
	}
	x.logger().Info().Str("superseded", partner).Msg("won the race: the other request is superseded")
}
