package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// ClaimArgs names the request to claim and the claimer. Defined in
// pkg/lifecycle so the engine needs no Redis client.
type ClaimArgs = lifecycle.ClaimArgs

// Claim is the outcome of a claim: exactly one of Held and Ended is non-nil.
// Defined in pkg/lifecycle so the engine needs no Redis client.
type Claim = lifecycle.Claim

// Ended describes a terminal request met by a claim. Defined in
// pkg/lifecycle so the engine needs no Redis client.
type Ended = lifecycle.Ended

// ErrInvalidClaim: Claim was called without a request or an owner.
var ErrInvalidClaim = errors.New("state: claim needs a request and an owner")

// Claim takes a request under a lease: a pending request (once its
// not_before has passed), or a claimed/processing one whose lease expired.
// Every successful claim increments the request's fencing token. A request
// whose batch is cancelled, that is past its own or its batch's expires_at
// (expired), or that was reclaimed more than MaxReclaims times ends instead
// (Ended.JustEnded). A request with no record whose batch has every request
// accounted for (pending = 0) is not one of the batch's: it ends failed with
// lifecycle.CodeMalformedMessage and no counter change. A live lease
// refuses every other claim, the same owner's included (a redelivered copy
// must not run twice) — except the same delivery claiming again (same
// owner, delivery count and a non-zero stream sequence): its first claim
// went through and the answer was lost, so it gets its lease back as it
// stands (same token, the attempt counted once). Errors:
// *LeaseHeldError when another lease is live, *NotYetError when a retry is
// not due, lifecycle.ErrNoBatch when the request names a batch that has no
// record and the request has none either (nothing is written),
// ErrUnavailable.
func (s *Store) Claim(ctx context.Context, a ClaimArgs) (Claim, error) {
	if a.Request == nil || a.Request.ID == "" || a.Owner == "" {
		return Claim{}, ErrInvalidClaim
	}
	req := a.Request
	ref := req.Ref()
	start := "0"
	if a.Start {
		start = "1"
	}
	rep, err := s.run(ctx, scriptClaim, s.keys.requestKeys(ref),
		s.nowMS(), a.Owner, s.cfg.LeaseTTL.Milliseconds(), a.Delivery, start,
		s.cfg.MaxReclaims, s.retentionMS(), req.ID, req.BatchID, req.Model, req.CustomID,
		toMS(req.ExpiresAt), a.Seq, req.ResultSubject)
	if err != nil {
		return Claim{}, fmt.Errorf("state: claim %s: %w", req.ID, err)
	}
	switch rep.code() {
	case "held":
		return Claim{Held: &lifecycle.Held{
			Ref:      ref,
			State:    lifecycle.State(rep.str(1)),
			Lease:    lifecycle.Lease{Owner: a.Owner, Token: rep.int(2), Expires: msTime(rep.int(4))},
			Attempt:  int(rep.int(3)),
			Deadline: earliest(req.ExpiresAt, msTime(rep.int(5))),
		}}, nil
	case "no_batch":
		return Claim{}, fmt.Errorf("state: claim %s: batch %s: %w", req.ID, req.BatchID, lifecycle.ErrNoBatch)
	case "ended":
		status := int(rep.int(4))
		e := &Ended{
			State:     lifecycle.State(rep.str(1)),
			Failure:   failureOf(rep.str(2), rep.str(3), status),
			Status:    status,
			Attempts:  int(rep.int(5)),
			Published: rep.int(6) == 1,
			JustEnded: rep.int(8) == 1,
		}
		if o := rep.str(7); o != "" {
			e.Outbox = []byte(o)
		}
		if m := rep.hash(9); m != nil {
			b := decodeBatch(m)
			e.Finalized = &b
		}
		return Claim{Ended: e}, nil
	case "lease_held":
		return Claim{}, fmt.Errorf("state: claim %s: %w", req.ID,
			&LeaseHeldError{Owner: rep.str(1), Until: msTime(rep.int(2))})
	case "not_yet":
		return Claim{}, fmt.Errorf("state: claim %s: %w", req.ID, &NotYetError{NotBefore: msTime(rep.int(1))})
	}
	return Claim{}, fmt.Errorf("state: claim %s: unexpected script reply %q", req.ID, rep.code())
}

// earliest is the earlier of two times, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
