package lifecycle

import (
	"encoding/json"
	"time"
)

// Result is one line of batch output: the OpenAI batch output shape plus
// salvo's fields. Exactly one Result is published per request.
type Result struct {
	V        int             `json:"v"`
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id,omitempty"`
	BatchID  string          `json:"batch_id,omitempty"`
	Response *ResultResponse `json:"response"`
	Error    *ResultError    `json:"error"`

	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	Model       string    `json:"model,omitempty"`
	RoutedModel string    `json:"routed_model,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	// DurationMS is the last upstream attempt's duration.
	DurationMS int64 `json:"duration_ms,omitempty"`
	// EscalationID is set on the line a winning racing copy (escalation)
	// publishes for its original: the copy's id, while ID and CustomID are
	// the original's. The line's Nats-Msg-Id is made from it, so it is
	// never dropped as a duplicate of the original's own (failure) line.
	EscalationID string `json:"escalation_id,omitempty"`
}

// ResultResponse is the upstream's answer. Body is the response JSON; when it
// is larger than the NATS max payload it is stored in the results object
// store and BodyRef names the object instead.
type ResultResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id,omitempty"`
	Body       json.RawMessage `json:"body,omitempty"`
	BodyRef    *BodyRef        `json:"body_ref,omitempty"`
}

// BodyRef points at a response body kept in a JetStream object store.
type BodyRef struct {
	Bucket string `json:"bucket"`
	Object string `json:"object"`
	Size   int64  `json:"size"`
}

// ResultError is the OpenAI batch output error object.
type ResultError struct {
	Code    FailureCode `json:"code"`
	Message string      `json:"message"`
}
