package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// BatchStatus follows the OpenAI batch object's status values.
type BatchStatus string

const (
	// BatchValidating: created, no request of it claimed yet.
	BatchValidating BatchStatus = "validating"
	// BatchInProgress: at least one request claimed, not every request ended.
	BatchInProgress BatchStatus = "in_progress"
	// BatchFinalizing: every request has ended; results are still being
	// published (the batch turns final when the last one is out).
	BatchFinalizing BatchStatus = "finalizing"
	BatchCompleted  BatchStatus = "completed"
	BatchFailed     BatchStatus = "failed"
	BatchExpired    BatchStatus = "expired"
	// BatchCancelling: cancelled, until every request has ended and every
	// result is out.
	BatchCancelling BatchStatus = "cancelling"
	BatchCancelled  BatchStatus = "cancelled"
)

// Terminal reports whether the batch is finished.
func (s BatchStatus) Terminal() bool {
	switch s {
	case BatchCompleted, BatchFailed, BatchExpired, BatchCancelled:
		return true
	}
	return false
}

// Valid reports whether s is one of the statuses above.
func (s BatchStatus) Valid() bool {
	switch s {
	case BatchValidating, BatchInProgress, BatchFinalizing, BatchCancelling:
		return true
	}
	return s.Terminal()
}

// Counts are a batch's request counters. The store keeps them exact: every
// request is counted in exactly one of the fields after Total.
type Counts struct {
	Total      int64 `json:"total"`
	Pending    int64 `json:"pending"`
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
	Canceled   int64 `json:"canceled"`
	Superseded int64 `json:"superseded"`
	Expired    int64 `json:"expired"`
}

// Count counts one request in state s in its counter (claimed and
// processing are in_progress); false, counting nothing, for a state no
// counter has.
func (c *Counts) Count(s State) bool {
	switch s {
	case StatePending:
		c.Pending++
	case StateClaimed, StateProcessing:
		c.InProgress++
	case StateCompleted:
		c.Completed++
	case StateFailed:
		c.Failed++
	case StateCanceled:
		c.Canceled++
	case StateSuperseded:
		c.Superseded++
	case StateExpired:
		c.Expired++
	default:
		return false
	}
	return true
}

// Terminal is the number of requests in a terminal state.
func (c Counts) Terminal() int64 {
	return c.Completed + c.Failed + c.Canceled + c.Superseded + c.Expired
}

// Batch is a group of requests sharing a deadline, as the store keeps it.
// Times are zero until the batch reaches them.
type Batch struct {
	ID               string            `json:"id"`
	CompletionWindow string            `json:"completion_window"`
	Endpoint         string            `json:"endpoint,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Status           BatchStatus       `json:"status"`
	Counts           Counts            `json:"request_counts"`
	// Sealed reports that Counts.Total is final: set at creation, or by
	// a seal. An open batch counts each request as it first arrives and
	// cannot finish before it is sealed (or expires, which seals it).
	Sealed bool `json:"sealed"`
	// ResultsPublished counts the requests whose result line is out.
	ResultsPublished int64 `json:"results_published"`
	// ResultsMissing counts the requests the batch ended without
	// publishing a result for: their messages were lost before any worker
	// read them (purged by hand, dropped by stream limits), so their ids
	// are unknown. Set when the batch turns final.
	ResultsMissing int64 `json:"results_missing,omitempty"`
	// Escalating counts the racing copies (escalation) started and not
	// ended yet. Copies are not requests of the batch (not in Counts); the
	// batch does not turn final while one runs, unless it expired.
	Escalating int64 `json:"escalating,omitempty"`

	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	InProgressAt time.Time `json:"in_progress_at,omitzero"`
	FinalizingAt time.Time `json:"finalizing_at,omitzero"`
	CancellingAt time.Time `json:"cancelling_at,omitzero"`
	// FinalizedAt is when the batch turned final; exactly one of
	// CompletedAt, FailedAt, ExpiredAt and CancelledAt equals it.
	FinalizedAt time.Time `json:"finalized_at,omitzero"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	FailedAt    time.Time `json:"failed_at,omitzero"`
	ExpiredAt   time.Time `json:"expired_at,omitzero"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
}

// NewBatch is what a batch is created with.
type NewBatch struct {
	ID               string
	CompletionWindow string
	Endpoint         string
	Metadata         map[string]string
	// CreatedAt and ExpiresAt are set by the creator; they are not part of
	// the batch's identity (a retried create at a later time is the same
	// batch and keeps the first times).
	CreatedAt time.Time
	ExpiresAt time.Time
	// Total is the number of requests, or 0 for an open batch whose total
	// a seal sets later.
	Total int64
}

// BatchQuery selects a page of batches, newest first.
type BatchQuery struct {
	// After is the id of the last batch of the previous page ("" for the
	// first page).
	After string
	// Limit is the page size (1..MaxBatchPage; 0 means DefaultBatchPage).
	Limit int
	// Status keeps only batches in this status ("" for all).
	Status BatchStatus
	// Metadata keeps only batches whose metadata holds every pair.
	Metadata map[string]string
}

// Page sizes of a batch list.
const (
	DefaultBatchPage = 20
	MaxBatchPage     = 100
)

// BatchPage is one page of a batch list.
type BatchPage struct {
	Batches []Batch
	// HasMore reports that a page after this one may hold batches.
	HasMore bool
}

// BatchEventType is the kind of a batch lifecycle event: created, or the
// batch's terminal status.
type BatchEventType string

// Batch event types.
const (
	EventCreated   BatchEventType = "created"
	EventCompleted BatchEventType = BatchEventType(BatchCompleted)
	EventFailed    BatchEventType = BatchEventType(BatchFailed)
	EventExpired   BatchEventType = BatchEventType(BatchExpired)
	EventCancelled BatchEventType = BatchEventType(BatchCancelled)
)

// Valid reports whether t is one of the event types above.
func (t BatchEventType) Valid() bool {
	return t == EventCreated || BatchStatus(t).Terminal()
}

// The batch errors callers branch on. The texts keep the "state:" prefix
// of the store that returns them.
var (
	// ErrBatchConflict: a batch with the same id but other contents
	// exists, or a seal names another total (see ConflictError).
	ErrBatchConflict = errors.New("state: batch exists with different contents")
	// ErrInvalidBatch: the batch or the seal cannot be used as given.
	ErrInvalidBatch = errors.New("state: invalid batch")
)

// ConflictError names the field in which a batch differs from the stored one.
type ConflictError struct {
	BatchID string
	Field   string
	Stored  string
	Given   string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("state: batch %s exists with %s %s, not %s", e.BatchID, e.Field, e.Stored, e.Given)
}

// Unwrap makes errors.Is(err, ErrBatchConflict) true.
func (e *ConflictError) Unwrap() error { return ErrBatchConflict }
