package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Sentinel errors. Callers branch with errors.Is. ErrNotFound, ErrLeaseLost,
// ErrLeaseHeld, ErrNotYet and ErrUnavailable are defined in pkg/lifecycle
// (so the engine needs no Redis client); these are the same values.
var (
	// ErrNotFound: the batch or request has no record.
	ErrNotFound = lifecycle.ErrNotFound
	// ErrBatchConflict: a batch with the same id but different contents
	// exists (see lifecycle.ConflictError).
	ErrBatchConflict = lifecycle.ErrBatchConflict
	// ErrInvalidBatch: CreateBatch or SealBatch was given an unusable batch.
	ErrInvalidBatch = lifecycle.ErrInvalidBatch
	// ErrLeaseLost: the record's state, owner or token no longer match the
	// caller's lease. The caller writes nothing more for this request.
	ErrLeaseLost = lifecycle.ErrLeaseLost
	// ErrLeaseHeld: another claim's lease is still live (see LeaseHeldError).
	ErrLeaseHeld = lifecycle.ErrLeaseHeld
	// ErrNotYet: a pending retry may not start yet (see NotYetError).
	ErrNotYet = lifecycle.ErrNotYet
	// ErrIllegalTransition: the move is not legal from the record's state;
	// it wraps lifecycle.ErrIllegalTransition.
	ErrIllegalTransition = fmt.Errorf("state: %w", lifecycle.ErrIllegalTransition)
	// ErrUnavailable: Redis is unreachable or did not answer in time.
	ErrUnavailable = lifecycle.ErrUnavailable
	// ErrInvalidSlotArgs: a model slot call got a limit or ttl it cannot use
	// (the error names the argument).
	ErrInvalidSlotArgs = errors.New("state: invalid model slot arguments")
)

// LeaseHeldError reports a claim refused because another lease is live.
// Defined in pkg/lifecycle so the engine needs no Redis client.
type LeaseHeldError = lifecycle.LeaseHeldError

// NotYetError reports a claim refused because the request's retry is not due.
// Defined in pkg/lifecycle so the engine needs no Redis client.
type NotYetError = lifecycle.NotYetError

// interpret translates a go-redis error into the package's vocabulary:
// redis.Nil becomes ErrNotFound, a canceled context stays itself, a Redis
// reply error stays wrapped as a Redis error, an error that says
// ErrUnavailable already stays itself, and everything else
// (connection refused, I/O error, timeouts, a closed pool) wraps
// ErrUnavailable as well as the cause.
func interpret(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		return err // ErrUnavailable: already said (a WAIT the replicas missed)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isConnReply(err) {
		return fmt.Errorf("redis reply: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// isConnReply reports Redis replies that mean "this node cannot serve now"
// (loading a dataset, a read-only replica, cluster down): unavailability,
// not a bug in a script.
func isConnReply(err error) bool {
	for _, p := range []string{"LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// opErr wraps an interpreted error with the operation and subject.
func opErr(op, subject string, err error) error {
	return fmt.Errorf("state: %s %s: %w", op, subject, interpret(err))
}
