package state

import (
	"context"
	"fmt"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// finishArgs is one holder-fenced terminal move (finish.lua).
type finishArgs struct {
	op      string
	ref     lifecycle.Ref
	lease   lifecycle.Lease
	need    string // required record state, "*" for claimed or processing
	target  lifecycle.State
	outcome Outcome
}

func (s *Store) finish(ctx context.Context, a finishArgs) (Transition, error) {
	code, msg := failureArgs(a.outcome)
	uncalled := "0"
	if a.outcome.Uncalled {
		uncalled = "1"
	}
	keys, partner := s.keys.pairKeys(a.ref)
	rep, err := s.run(ctx, scriptFinish, keys,
		s.nowMS(), a.lease.Owner, a.lease.Token, a.need, string(a.target), uncalled,
		outcomeStatus(a.outcome), code, msg, a.outcome.RoutedModel, a.outcome.Result,
		s.retentionMS(), a.ref.ID, partner)
	if err != nil {
		return Transition{}, fmt.Errorf("state: %s %s: %w", a.op, a.ref.ID, err)
	}
	return s.transitionOf(a.op, a.ref, rep)
}

// Complete records the successful result of a processing request. Of a
// racing pair (escalation) the first completed wins: a copy completing
// while its original is pending, in flight or failed supersedes the
// original (Transition.Superseded names it); a copy whose original ended
// otherwise ends superseded itself (Transition.State); an original
// completing supersedes its copy if that is still pending or in flight. A hard
// terminal request drops the write (Applied false); a soft canceled one is
// replaced when owner and token still match and the cancel's result was not
// published yet (MarkPublished), the counters moving from canceled to
// completed in the same script. Once the cancel was published the write is
// dropped (Applied false, State canceled, counters unchanged), so a request
// never gets two result messages.
func (s *Store) Complete(ctx context.Context, p lifecycle.Processing, o Outcome) (Transition, error) {
	o.Failure = nil
	return s.finish(ctx, finishArgs{
		op: "complete", ref: p.Ref, lease: p.Lease, need: string(lifecycle.StateProcessing),
		target: lifecycle.StateCompleted, outcome: o,
	})
}

// Fail ends a held request as failed (o.Failure required). Like Complete it
// replaces a soft cancel for the matching holder unless the cancel was
// already published (then Applied false, State canceled).
func (s *Store) Fail(ctx context.Context, h lifecycle.Held, o Outcome) (Transition, error) {
	if o.Failure == nil {
		return Transition{}, fmt.Errorf("state: fail %s: %w", h.Ref.ID, ErrInvalidOutcome)
	}
	return s.finish(ctx, finishArgs{
		op: "fail", ref: h.Ref, lease: h.Lease, need: "*", target: lifecycle.StateFailed, outcome: o,
	})
}

// Cancel ends a held request as canceled (o.Failure defaults to
// request_cancelled).
func (s *Store) Cancel(ctx context.Context, h lifecycle.Held, o Outcome) (Transition, error) {
	if o.Failure == nil {
		o.Failure = lifecycle.NewFailure(lifecycle.CodeRequestCanceled, 0, "the request was cancelled")
	}
	return s.finish(ctx, finishArgs{
		op: "cancel", ref: h.Ref, lease: h.Lease, need: "*", target: lifecycle.StateCanceled, outcome: o,
	})
}

// Expire ends a held request whose deadline passed as expired (o.Failure
// defaults to batch_expired).
func (s *Store) Expire(ctx context.Context, h lifecycle.Held, o Outcome) (Transition, error) {
	if o.Failure == nil {
		o.Failure = lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the request expired before it could finish")
	}
	return s.finish(ctx, finishArgs{
		op: "expire", ref: h.Ref, lease: h.Lease, need: "*", target: lifecycle.StateExpired, outcome: o,
	})
}

// requeue runs requeue.lua for Retry and Release.
func (s *Store) requeue(ctx context.Context, op string, h lifecycle.Held, f *lifecycle.Failure, notBefore time.Time, uncalled bool) (Transition, error) {
	code, msg, status, unc := "", "", 0, "0"
	if uncalled {
		unc = "1"
	}
	if f != nil {
		code, msg, status = string(f.Code), f.Message, f.Status
	}
	rep, err := s.run(ctx, scriptRequeue, s.keys.requestKeys(h.Ref),
		s.nowMS(), h.Lease.Owner, h.Lease.Token, op, toMS(notBefore), code, msg, status,
		s.retentionMS(), h.Ref.ID, unc)
	if err != nil {
		return Transition{}, fmt.Errorf("state: %s %s: %w", op, h.Ref.ID, err)
	}
	return s.transitionOf(op, h.Ref, rep)
}

// Retry puts a processing request back to pending after a retriable
// failure: the attempt (counted when the claim started it) stays spent, f
// is kept as the last error and the next
// claim waits until notBefore. If the batch was cancelled meanwhile the
// request ends canceled instead (Transition.State says so).
func (s *Store) Retry(ctx context.Context, p lifecycle.Processing, f *lifecycle.Failure, notBefore time.Time) (Transition, error) {
	return s.requeue(ctx, "retry", p.Held(), f, notBefore, false)
}

// Release gives a held request back to pending (shutdown); canceled instead
// if the batch is cancelled. called says whether the holder made its
// upstream call (cut short or not): the attempt its claim counted then
// stays counted, and is taken back otherwise.
func (s *Store) Release(ctx context.Context, h lifecycle.Held, called bool) (Transition, error) {
	return s.requeue(ctx, "release", h, nil, time.Time{}, !called)
}

// ForceFail fails a request that is not hard-terminal regardless of any
// lease (a poison message past max deliveries), creating its record if
// needed and bumping the fencing token so any holder's later writes are
// rejected. o.Failure is required. A request with no record whose batch
// (not cancelled) has every request accounted for (pending = 0) is not one
// of the batch's: its failure is recorded without touching the counters.
func (s *Store) ForceFail(ctx context.Context, req *lifecycle.Request, o Outcome) (Transition, error) {
	if req == nil || req.ID == "" {
		return Transition{}, ErrInvalidClaim
	}
	if o.Failure == nil {
		return Transition{}, fmt.Errorf("state: force fail %s: %w", req.ID, ErrInvalidOutcome)
	}
	ref := req.Ref()
	code, msg := failureArgs(o)
	rep, err := s.run(ctx, scriptForceFail, s.keys.requestKeys(ref),
		s.nowMS(), req.ID, req.BatchID, req.Model, req.CustomID, toMS(req.ExpiresAt),
		outcomeStatus(o), code, msg, o.RoutedModel, o.Result, s.retentionMS())
	if err != nil {
		return Transition{}, fmt.Errorf("state: force fail %s: %w", req.ID, err)
	}
	return s.transitionOf("force fail", ref, rep)
}

// CancelRequest cancels one request for the control plane: pending, claimed
// and processing become canceled with the counters kept exact. The cancel is
// soft: the holder's later Complete or Fail with its own token still wins,
// as long as the canceled result was not published yet.
// A request never claimed gets a canceled record (its later claim ends
// Ended{State: canceled}); in a batch whose pending counter is already zero
// such a request cannot exist and the call fails with ErrNotFound. Ids
// lifecycle would refuse fail with ErrInvalidID.
func (s *Store) CancelRequest(ctx context.Context, ref lifecycle.Ref) (Transition, error) {
	if err := checkRef(ref); err != nil {
		return Transition{}, fmt.Errorf("state: cancel request: %w", err)
	}
	rep, err := s.run(ctx, scriptCancelRequest, s.keys.requestKeys(ref),
		s.nowMS(), ref.ID, ref.BatchID, s.retentionMS())
	if err != nil {
		return Transition{}, fmt.Errorf("state: cancel request %s: %w", ref.ID, err)
	}
	return s.transitionOf("cancel request", ref, rep)
}

// Supersede ends a request because a racing copy of it (winner, the copy's
// request id) completed first: pending, claimed, processing and failed
// become superseded, the fence moves so the loser's holder can write
// nothing more, and the batch counters follow in the same script. The
// caller (the winner's worker) then publishes a supersede event so the
// loser's in-flight call is aborted. completed, canceled, superseded and
// expired requests are left alone (Applied=false). A request never claimed
// gets a superseded record; in a batch whose pending counter is already
// zero such a request cannot exist and the call fails with ErrNotFound.
func (s *Store) Supersede(ctx context.Context, ref lifecycle.Ref, winner string) (Transition, error) {
	if err := checkRef(ref); err != nil {
		return Transition{}, fmt.Errorf("state: supersede: %w", err)
	}
	if winner == "" {
		return Transition{}, fmt.Errorf("state: supersede %s: the winning copy's id is required: %w", ref.ID, ErrInvalidOutcome)
	}
	rep, err := s.run(ctx, scriptSupersede, s.keys.requestKeys(ref),
		s.nowMS(), ref.ID, ref.BatchID, winner, s.retentionMS())
	if err != nil {
		return Transition{}, fmt.Errorf("state: supersede %s: %w", ref.ID, err)
	}
	return s.transitionOf("supersede", ref, rep)
}
