package api

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The service's dependencies speak pkg/lifecycle only, so pkg/api links no
// Redis client and imports neither pkg/state nor pkg/queue; internal/config
// wires the store, the queue and the worker in.

// Store is what the API needs of the Redis store (satisfied by *state.Store).
type Store interface {
	// CreateBatch creates the batch, or returns the stored one when a
	// batch with the same id and contents exists; the bool reports that
	// it was created now.
	CreateBatch(ctx context.Context, b lifecycle.NewBatch) (lifecycle.Batch, bool, error)
	// SealBatch reports finalized when this seal turned the batch final.
	SealBatch(ctx context.Context, id string, total int64) (lifecycle.Batch, bool, error)
	Batch(ctx context.Context, id string) (lifecycle.Batch, error)
	ListBatches(ctx context.Context, q lifecycle.BatchQuery) (lifecycle.BatchPage, error)
	CancelBatch(ctx context.Context, id string) (lifecycle.Transition, error)
	CancelRequest(ctx context.Context, ref lifecycle.Ref) (lifecycle.Transition, error)
	Request(ctx context.Context, ref lifecycle.Ref) (lifecycle.Record, error)
}

// Events publishes control events (satisfied by *queue.Client).
type Events interface {
	// PublishCancel tells the workers to abort the in-flight calls of a
	// batch (requestID "") or of one request.
	PublishCancel(ctx context.Context, batchID, requestID string) error
}

// Engine is what the API needs of the request engine (satisfied by
// *worker.Worker).
type Engine interface {
	// PublishBatchEvent publishes an event the caller's own move made due
	// (the created event of a batch it created, the final event of a batch
	// its seal or cancel ended) and records it published in the batch's
	// outbox; the sweep publishes what stays unpublished.
	PublishBatchEvent(ctx context.Context, batchID string, t lifecycle.BatchEventType) error
	// EndQueued ends the queued requests of a cancelled or expired batch:
	// each gets its result, then their messages are purged.
	EndQueued(ctx context.Context, batchID string) error
}

// Deps are the service's collaborators. Store, Events and Engine are
// required.
type Deps struct {
	Store  Store
	Events Events
	Engine Engine
	// Logger receives the service's logs (nil: none).
	Logger *zerolog.Logger
	// Clock gives the time batches are created at (nil: time.Now).
	Clock func() time.Time
}
