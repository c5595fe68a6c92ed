package lifecycle

import "time"

// BatchStatus follows the OpenAI batch object's status values.
type BatchStatus string

const (
	BatchValidating BatchStatus = "validating"
	BatchInProgress BatchStatus = "in_progress"
	BatchFinalizing BatchStatus = "finalizing"
	BatchCompleted  BatchStatus = "completed"
	BatchFailed     BatchStatus = "failed"
	BatchExpired    BatchStatus = "expired"
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

// Terminal is the number of requests in a terminal state.
func (c Counts) Terminal() int64 {
	return c.Completed + c.Failed + c.Canceled + c.Superseded + c.Expired
}

// Batch is a group of requests sharing a deadline.
type Batch struct {
	ID               string            `json:"id"`
	CompletionWindow string            `json:"completion_window"`
	CreatedAt        time.Time         `json:"created_at"`
	ExpiresAt        time.Time         `json:"expires_at"`
	Endpoint         string            `json:"endpoint,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Status           BatchStatus       `json:"status"`
	Counts           Counts            `json:"request_counts"`
	CancellingAt     time.Time         `json:"cancelling_at,omitzero"`
	FinalizedAt      time.Time         `json:"finalized_at,omitzero"`
}
