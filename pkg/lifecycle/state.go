package lifecycle

import (
	"errors"
	"fmt"
)

// State is where a request is in its lifecycle. The string values are part of
// the wire contract and of the Redis layout.
type State string

const (
	StatePending    State = "pending"
	StateClaimed    State = "claimed"
	StateProcessing State = "processing"
	StateCompleted  State = "completed"
	StateFailed     State = "failed"
	StateCanceled   State = "canceled"
	StateSuperseded State = "superseded"
	StateExpired    State = "expired"
)

// States lists every state in lifecycle order.
var States = []State{
	StatePending, StateClaimed, StateProcessing,
	StateCompleted, StateFailed, StateCanceled, StateSuperseded, StateExpired,
}

// ErrIllegalTransition is returned when a move is not in the transition table.
var ErrIllegalTransition = errors.New("lifecycle: illegal transition")

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StatePending, StateClaimed, StateProcessing,
		StateCompleted, StateFailed, StateCanceled, StateSuperseded, StateExpired:
		return true
	}
	return false
}

// Terminal reports whether s ends the request. canceled is terminal but soft:
// see HardTerminal.
func (s State) Terminal() bool {
	switch s {
	case StateCompleted, StateFailed, StateCanceled, StateSuperseded, StateExpired:
		return true
	}
	return false
}

// HardTerminal reports whether no later result may replace s. Only canceled is
// a soft terminal: a real completed or failed result of work that ran anyway
// supersedes it.
func (s State) HardTerminal() bool { return s.Terminal() && s != StateCanceled }

// InFlight reports whether s means a worker holds the request.
func (s State) InFlight() bool { return s == StateClaimed || s == StateProcessing }

// ParseState converts the wire form of a state, rejecting unknown values.
func ParseState(v string) (State, error) {
	s := State(v)
	if !s.Valid() {
		return "", fmt.Errorf("lifecycle: unknown state %q", v)
	}
	return s, nil
}

// Move names a transition. The store and the metrics use these names.
type Move string

const (
	MoveClaim     Move = "claim"     // pending → claimed
	MoveReclaim   Move = "reclaim"   // claimed|processing → claimed after the lease expired
	MoveStart     Move = "start"     // claimed → processing
	MoveUnclaim   Move = "unclaim"   // claimed → pending (shutdown, no attempt used)
	MoveRetry     Move = "retry"     // processing → pending: a retry with not_before, or a release on shutdown (Processing.Release, no attempt used)
	MoveComplete  Move = "complete"  // processing|canceled → completed
	MoveFail      Move = "fail"      // pending|claimed|processing|canceled → failed
	MoveCancel    Move = "cancel"    // pending|claimed|processing → canceled
	MoveSupersede Move = "supersede" // pending|claimed|processing|failed → superseded
	MoveExpire    Move = "expire"    // pending|claimed|processing → expired
)

// Edge is one legal move between two states.
type Edge struct {
	From, To State
	Move     Move
}

// Transitions is the whole transition table: every legal (from, to) pair and
// the move that makes it. Any pair not listed is illegal.
var Transitions = []Edge{
	{StatePending, StateClaimed, MoveClaim},
	{StateClaimed, StateClaimed, MoveReclaim},
	{StateProcessing, StateClaimed, MoveReclaim},
	{StateClaimed, StateProcessing, MoveStart},
	{StateClaimed, StatePending, MoveUnclaim},
	{StateProcessing, StatePending, MoveRetry},
	{StateProcessing, StateCompleted, MoveComplete},
	{StateCanceled, StateCompleted, MoveComplete},
	{StatePending, StateFailed, MoveFail},
	{StateClaimed, StateFailed, MoveFail},
	{StateProcessing, StateFailed, MoveFail},
	{StateCanceled, StateFailed, MoveFail},
	{StatePending, StateCanceled, MoveCancel},
	{StateClaimed, StateCanceled, MoveCancel},
	{StateProcessing, StateCanceled, MoveCancel},
	{StatePending, StateSuperseded, MoveSupersede},
	{StateClaimed, StateSuperseded, MoveSupersede},
	{StateProcessing, StateSuperseded, MoveSupersede},
	{StateFailed, StateSuperseded, MoveSupersede},
	{StatePending, StateExpired, MoveExpire},
	{StateClaimed, StateExpired, MoveExpire},
	{StateProcessing, StateExpired, MoveExpire},
}

type edgeKey struct{ from, to State }

var edgeIndex = func() map[edgeKey]Move {
	m := make(map[edgeKey]Move, len(Transitions))
	for _, e := range Transitions {
		m[edgeKey{e.From, e.To}] = e.Move
	}
	return m
}()

// CanTransition reports whether from → to is in the table.
func CanTransition(from, to State) bool {
	_, ok := edgeIndex[edgeKey{from, to}]
	return ok
}

// CheckTransition returns the move for from → to, or an error wrapping
// ErrIllegalTransition that names both states.
func CheckTransition(from, to State) (Move, error) {
	m, ok := edgeIndex[edgeKey{from, to}]
	if !ok {
		return "", fmt.Errorf("%w: %s → %s", ErrIllegalTransition, from, to)
	}
	return m, nil
}
