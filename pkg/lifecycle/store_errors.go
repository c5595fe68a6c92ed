package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// The store's errors that callers branch on (errors.Is, errors.As). The
// texts keep the "state:" prefix of the package that returns them;
// pkg/state keeps these names as aliases.
var (
	// ErrNotFound: the batch or request has no record.
	ErrNotFound = errors.New("state: not found")
	// ErrLeaseLost: the record's state, owner or token no longer match the
	// caller's lease. The caller writes nothing more for this request.
	ErrLeaseLost = errors.New("state: lease lost")
	// ErrLeaseHeld: another claim's lease is still live (see LeaseHeldError).
	ErrLeaseHeld = errors.New("state: lease held by another claim")
	// ErrNotYet: a pending retry may not start yet (see NotYetError).
	ErrNotYet = errors.New("state: retry not due yet")
	// ErrUnavailable: Redis is unreachable or did not answer in time.
	ErrUnavailable = errors.New("state: redis unavailable")
	// ErrNoBatch: a claimed request names a batch that has no record (not
	// created yet, or gone by retention). Nothing was written.
	ErrNoBatch = errors.New("state: the request's batch does not exist")
)

// LeaseHeldError reports a claim refused because another lease is live.
type LeaseHeldError struct {
	Owner string
	Until time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("state: lease held by %s until %s", e.Owner, e.Until.UTC().Format(time.RFC3339Nano))
}

// Unwrap makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// NotYetError reports a claim refused because the request's retry is not due.
type NotYetError struct {
	NotBefore time.Time
}

func (e *NotYetError) Error() string {
	return fmt.Sprintf("state: retry not before %s", e.NotBefore.UTC().Format(time.RFC3339Nano))
}

// Unwrap makes errors.Is(err, ErrNotYet) true.
func (e *NotYetError) Unwrap() error { return ErrNotYet }
