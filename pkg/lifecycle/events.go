package lifecycle

import "time"

// The wire events besides requests and results. pkg/queue publishes and
// delivers them; they live here so the engine can take them without
// linking a NATS client. pkg/queue keeps its names as aliases.

// ControlKind is the kind of a control event.
type ControlKind string

// Control event kinds.
const (
	// ControlCancel cancels a batch or one request.
	ControlCancel ControlKind = "cancel"
	// ControlSupersede ends a request whose racing copy won.
	ControlSupersede ControlKind = "supersede"
	// ControlHold says an upstream asked to hold a budget (a 429 or 503
	// with Retry-After); the hold itself is in Redis.
	ControlHold ControlKind = "hold"
)

// ControlEvent is the JSON body of a control message. Redis holds the truth;
// the event only makes in-flight aborts fast, so a missed event costs
// latency, never correctness.
type ControlEvent struct {
	Kind      ControlKind `json:"kind"`
	BatchID   string      `json:"batch_id,omitempty"`
	RequestID string      `json:"request_id,omitempty"`
	By        string      `json:"by,omitempty"`
	// Budget and Model name the budget of a hold (never an API key).
	Budget string    `json:"budget,omitempty"`
	Model  string    `json:"model,omitempty"`
	At     time.Time `json:"at"`
}

// BatchEvent is a batch lifecycle event, stored in the RESULTS stream on
// <p>.evt.batch.<batch>. Each batch gets two: created, when it is created,
// and its terminal status, when it finishes. Redis keeps an outbox per
// event, so each is published once (see docs/PROTOCOL.md).
type BatchEvent struct {
	Type  BatchEventType `json:"type"`
	Batch Batch          `json:"batch"`
	At    time.Time      `json:"at"`
}
