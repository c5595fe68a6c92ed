package lifecycle

import "time"

// Ref names one request: its id and the batch it belongs to (empty for a
// batchless request). Every store key of a request is derived from a Ref.
type Ref struct {
	ID      string
	BatchID string
}

// Lease is one worker's ownership of a request. Token is the fencing token the
// store issued with the claim; it strictly increases with every claim of the
// same request, so a write carrying an older token is rejected.
type Lease struct {
	Owner   string
	Token   int64
	Expires time.Time
}

// Processing is a request whose upstream call may be in flight. The store
// takes one for the moves only a started request makes (complete, retry);
// a claim with start gives one, through Held.Processing.
type Processing struct {
	Ref       Ref
	Lease     Lease
	Attempt   int
	StartedAt time.Time
}

// Held is a request a worker holds under its lease, in state claimed or
// processing. Moves legal from both states (fail, cancel, expire, release,
// lease refresh) take a Held; moves legal from only one take the exact type.
type Held struct {
	Ref   Ref
	Lease Lease
	// Attempt counts the upstream attempts started, this holder's included
	// when the claim started it (State processing): 1 on the first call.
	Attempt int
	State   State
}

// Held returns the processing request as a Held.
func (p Processing) Held() Held {
	return Held{Ref: p.Ref, Lease: p.Lease, Attempt: p.Attempt, State: StateProcessing}
}

// Processing returns h as a Processing when it is in that state.
func (h Held) Processing(startedAt time.Time) (Processing, bool) {
	if h.State != StateProcessing {
		return Processing{}, false
	}
	return Processing{Ref: h.Ref, Lease: h.Lease, Attempt: h.Attempt, StartedAt: startedAt}, true
}

// The per-state value model. Nothing outside tests calls the types and
// methods below: the store makes every move itself, one script per move,
// and answers with a Held, a Processing or a state.Transition, never with
// these values. They are Transitions written out as Go methods, each
// checked against the table by TestTypestateMethodsAreLegalEdges, so the
// typestate design (DESIGN §4) stays stated in code. Only Failed.Supersede
// and Superseded have a caller planned: the escalation issue (racing
// copies), for a failed original whose escalated copy succeeded.

// Pending is a request waiting for a worker. Attempt counts the upstream
// attempts already spent on it.
type Pending struct {
	Ref       Ref
	Attempt   int
	NotBefore time.Time
}

// Claimed is a request a worker holds under a lease but has not sent upstream.
type Claimed struct {
	Ref     Ref
	Lease   Lease
	Attempt int
}

// Completed is the hard terminal of a request that got a successful response.
type Completed struct {
	Ref         Ref
	Attempt     int
	Status      int
	CompletedAt time.Time
}

// Failed is the hard terminal of a request that will not be tried again.
type Failed struct {
	Ref      Ref
	Attempt  int
	Failure  Failure
	FailedAt time.Time
}

// Canceled is the soft terminal of a canceled request.
type Canceled struct {
	Ref        Ref
	CanceledAt time.Time
}

// Superseded is the terminal of a request whose racing partner won.
// Planned caller: the escalation issue.
type Superseded struct {
	Ref          Ref
	SupersededBy string
	SupersededAt time.Time
}

// Expired is the terminal of a request whose deadline passed before it ran.
type Expired struct {
	Ref       Ref
	ExpiredAt time.Time
}

// Claim takes the request under lease.
func (p Pending) Claim(l Lease) Claimed {
	return Claimed{Ref: p.Ref, Lease: l, Attempt: p.Attempt}
}

// Cancel ends a queued request as canceled.
func (p Pending) Cancel(now time.Time) Canceled { return Canceled{Ref: p.Ref, CanceledAt: now} }

// Expire ends a queued request whose deadline passed.
func (p Pending) Expire(now time.Time) Expired { return Expired{Ref: p.Ref, ExpiredAt: now} }

// Fail ends a queued request that can never run (malformed, poison).
func (p Pending) Fail(f Failure, now time.Time) Failed {
	return Failed{Ref: p.Ref, Attempt: p.Attempt, Failure: f, FailedAt: now}
}

// Start marks the request processing: the upstream call may begin once the
// store has made this durable.
func (c Claimed) Start(now time.Time) Processing {
	return Processing{Ref: c.Ref, Lease: c.Lease, Attempt: c.Attempt, StartedAt: now}
}

// Unclaim gives the request back without spending an attempt.
func (c Claimed) Unclaim() Pending { return Pending{Ref: c.Ref, Attempt: c.Attempt} }

// Fail ends the request before any upstream call (unrouted model, build error).
func (c Claimed) Fail(f Failure, now time.Time) Failed {
	return Failed{Ref: c.Ref, Attempt: c.Attempt, Failure: f, FailedAt: now}
}

// Cancel ends a claimed request as canceled.
func (c Claimed) Cancel(now time.Time) Canceled { return Canceled{Ref: c.Ref, CanceledAt: now} }

// Expire ends a claimed request whose deadline passed.
func (c Claimed) Expire(now time.Time) Expired { return Expired{Ref: c.Ref, ExpiredAt: now} }

// Held returns the claimed request as a Held.
func (c Claimed) Held() Held {
	return Held{Ref: c.Ref, Lease: c.Lease, Attempt: c.Attempt, State: StateClaimed}
}

// Complete records the successful result of the attempt.
func (p Processing) Complete(status int, now time.Time) Completed {
	return Completed{Ref: p.Ref, Attempt: p.Attempt + 1, Status: status, CompletedAt: now}
}

// Fail records a failure that will not be retried.
func (p Processing) Fail(f Failure, now time.Time) Failed {
	return Failed{Ref: p.Ref, Attempt: p.Attempt + 1, Failure: f, FailedAt: now}
}

// Retry puts the request back to pending after a retriable failure; the
// attempt is spent and the next one may not start before notBefore.
func (p Processing) Retry(notBefore time.Time) Pending {
	return Pending{Ref: p.Ref, Attempt: p.Attempt + 1, NotBefore: notBefore}
}

// Release gives the request back without spending an attempt (shutdown).
func (p Processing) Release() Pending { return Pending{Ref: p.Ref, Attempt: p.Attempt} }

// Cancel ends an in-flight request as canceled.
func (p Processing) Cancel(now time.Time) Canceled { return Canceled{Ref: p.Ref, CanceledAt: now} }

// Expire ends an in-flight request whose deadline passed.
func (p Processing) Expire(now time.Time) Expired { return Expired{Ref: p.Ref, ExpiredAt: now} }

// Complete lets a late real result replace a cancel (canceled is soft).
func (c Canceled) Complete(attempt, status int, now time.Time) Completed {
	return Completed{Ref: c.Ref, Attempt: attempt, Status: status, CompletedAt: now}
}

// Fail lets a late real failure replace a cancel.
func (c Canceled) Fail(attempt int, f Failure, now time.Time) Failed {
	return Failed{Ref: c.Ref, Attempt: attempt, Failure: f, FailedAt: now}
}

// Supersede ends a failed original whose escalated copy succeeded.
// Planned caller: the escalation issue.
func (f Failed) Supersede(winner string, now time.Time) Superseded {
	return Superseded{Ref: f.Ref, SupersededBy: winner, SupersededAt: now}
}
