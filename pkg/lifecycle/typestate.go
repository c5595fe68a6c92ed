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
	// Deadline is when the request must be over: the earlier of its own
	// expires_at and its batch's (zero when it has neither).
	Deadline time.Time
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
