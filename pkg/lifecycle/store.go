package lifecycle

import "time"

// The store's answers. pkg/state makes every move in Redis and answers with
// these values; they live here so the engine (pkg/worker) can take them
// without linking a Redis client. pkg/state keeps its names as aliases.

// Record is a request's hash as the store keeps it: metadata only, never a
// response body (the unpublished result line aside, see Outbox).
type Record struct {
	Ref       Ref
	State     State
	Attempt   int // upstream attempts started, the one in flight included
	Owner     string
	Token     int64
	Model     string
	CustomID  string
	ExpiresAt time.Time
	// LeaseExpires is when the current lease ends (zero when not held).
	LeaseExpires time.Time
	// NotBefore is when a pending retry may start (zero for none).
	NotBefore   time.Time
	CreatedAt   time.Time
	ClaimedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	UpdatedAt   time.Time
	RoutedModel string
	// Status is the last HTTP status, 0 if none.
	Status int
	// Failure is the last error, nil if none.
	Failure *Failure
	// Reclaims counts claims after a lease expired.
	Reclaims int
	// Delivery is the JetStream delivery count of the last claim.
	Delivery uint64
	// SupersededBy is the id of the racing copy that won, for a superseded
	// request.
	SupersededBy string
	// EscalatedTo is the id of the request's racing copy (escalation,
	// mode race), once one was started.
	EscalatedTo string
	// EscalatedFrom is, for a racing copy, the id of its original.
	EscalatedFrom string
	// Published reports that MarkPublished was called.
	Published bool
	// Outbox is the result line stored by the terminal move, until published.
	Outbox []byte
	// ResultSubject is the request's own result_subject ("" for none).
	ResultSubject string
}

// Ended is the record as the view a claim returns for an ended request:
// state, last failure and status, attempts spent, the published mark and
// the stored result line. JustEnded and Finalized stay unset: reading a
// record ends nothing. The view is meant for a terminal record
// (State.Terminal()); it is built from whatever the record holds.
func (r Record) Ended() *Ended {
	return &Ended{
		State:     r.State,
		Failure:   r.Failure,
		Status:    r.Status,
		Attempts:  r.Attempt,
		Published: r.Published,
		Outbox:    r.Outbox,
	}
}

// ClaimArgs names the request to claim and the claimer.
type ClaimArgs struct {
	// Request is the queued request; its record is created from it on the
	// first claim (id, batch id, model, custom id, expires_at).
	Request *Request
	// Owner is the worker instance id.
	Owner string
	// Delivery is the JetStream delivery count of this message (recorded,
	// informational).
	Delivery uint64
	// Seq is the message's REQUESTS stream sequence (recorded: the sweep
	// checks whether the message of a stranded request still exists).
	Seq uint64
	// Start claims straight into processing in the same script (what the
	// worker does). Without it the request stays claimed: its holder can
	// still end it (Fail, Cancel, Expire) or give it back (Release), but
	// the store has no separate claimed → processing move.
	Start bool
}

// Claim is the outcome of a claim: exactly one of Held and Ended is non-nil.
type Claim struct {
	// Held is the request under the new lease (claimed, or processing when
	// ClaimArgs.Start); Lease.Token is the new fencing token.
	Held *Held
	// Ended reports a request that is terminal: already, or because of this
	// claim (JustEnded).
	Ended *Ended
}

// Ended describes a terminal request met by a claim.
type Ended struct {
	// State is the request's terminal state.
	State State
	// Failure is the last error, when there is one.
	Failure *Failure
	// Status is the last HTTP status, 0 if none.
	Status int
	// Attempts is the number of upstream attempts started (each counted by
	// the claim that started it, calls cut by a crash or shutdown included).
	Attempts int
	// Published reports that MarkPublished was called for it.
	Published bool
	// Outbox is the result line stored by the terminal move (nil if none or
	// already published).
	Outbox []byte
	// JustEnded is true when this claim made the terminal move: the batch
	// was cancelled (canceled), the request or its batch was past
	// expires_at (expired),
	// it was reclaimed more than MaxReclaims times (failed, max deliveries)
	// or it is not one of its batch's requests (failed, malformed message;
	// no counter moves).
	JustEnded bool
	// Finalized is the batch, as this call left it, when this call ended
	// its last request: finalizing (cancelling) while results are still
	// out, or already final (Status.Terminal()) when they were all
	// published; nil otherwise.
	Finalized *Batch
}

// Outcome is what a terminal move stores.
type Outcome struct {
	// Status is the HTTP status, 0 if none.
	Status int
	// Failure is the reason; required for Fail and ForceFail, defaulted for
	// Cancel and Expire.
	Failure *Failure
	// RoutedModel is the model the call was routed to, if it differs.
	RoutedModel string
	// Result is the result line, kept in the record's outbox until
	// MarkPublished.
	Result []byte
	// Uncalled says a processing holder ends the request without making
	// the upstream call its claim counted as an attempt (no route, a retry
	// refused at the deadline): the store takes the attempt back.
	Uncalled bool
}

// Transition reports what a store move did (Transitions is the table of
// legal moves; a Transition is one move's answer).
type Transition struct {
	// State is the request's state after the call.
	State State
	// Previous is the state the call found.
	Previous State
	// Applied is false when the write was dropped because the request was
	// already terminal (first terminal result wins).
	Applied bool
	// Finalized is the batch, as this call left it, when this call ended
	// its last request (see Ended.Finalized); nil otherwise.
	Finalized *Batch
	// Superseded is the id of the racing partner (escalation) this call's
	// completion superseded: the original of a copy that won, or the copy
	// of an original that won; "" when none. Its holder's call is aborted
	// through a supersede event.
	Superseded string
}

// Stranded is an in-flight request of a batch whose lease has ended, as
// the sweep finds it, with the REQUESTS stream sequence of the message its
// last claim came from (0 when the claim recorded none).
type Stranded struct {
	Ref          Ref
	LeaseExpires time.Time
	Seq          uint64
}
