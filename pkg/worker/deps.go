package worker

import (
	"context"
	"time"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
	"github.com/salvo-run/salvo/pkg/transport"
)

// The worker's dependencies speak pkg/lifecycle and pkg/transport only, so
// the engine links no Redis or NATS client; internal/config wires the
// concrete store and queue (and asserts they satisfy these interfaces).

// Store is what the worker needs of the Redis store (satisfied by *state.Store).
type Store interface {
	Claim(ctx context.Context, a lifecycle.ClaimArgs) (lifecycle.Claim, error)
	Batch(ctx context.Context, id string) (lifecycle.Batch, error)
	Request(ctx context.Context, ref lifecycle.Ref) (lifecycle.Record, error)
	Complete(ctx context.Context, p lifecycle.Processing, o lifecycle.Outcome) (lifecycle.Transition, error)
	Fail(ctx context.Context, h lifecycle.Held, o lifecycle.Outcome) (lifecycle.Transition, error)
	Cancel(ctx context.Context, h lifecycle.Held, o lifecycle.Outcome) (lifecycle.Transition, error)
	Expire(ctx context.Context, h lifecycle.Held, o lifecycle.Outcome) (lifecycle.Transition, error)
	Retry(ctx context.Context, p lifecycle.Processing, f *lifecycle.Failure, notBefore time.Time) (lifecycle.Transition, error)
	Release(ctx context.Context, h lifecycle.Held, called bool) (lifecycle.Transition, error)
	Refresh(ctx context.Context, hs []lifecycle.Held) []error
	MarkPublished(ctx context.Context, refs []lifecycle.Ref) ([]lifecycle.Batch, error)
	ForceFail(ctx context.Context, req *lifecycle.Request, o lifecycle.Outcome) (lifecycle.Transition, error)
	AcquireModelSlot(ctx context.Context, model, holder string, limit int, ttl time.Duration) (bool, error)
	ReleaseModelSlot(ctx context.Context, model, holder string) error
	RefreshModelSlots(ctx context.Context, model string, holders []string, ttl time.Duration) error
	// The fleet's rate-limit budgets (pkg/ratelimit).
	ratelimit.Backend

	// The batch's event outbox.
	ClaimBatchEvent(ctx context.Context, id string, t lifecycle.BatchEventType, stale time.Duration) (*lifecycle.Batch, error)
	BatchEventDone(ctx context.Context, id string, t lifecycle.BatchEventType) error

	// The sweep's reads and moves (sweep.go).
	HoldSweepLock(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	LiveBatches(ctx context.Context, offset, limit int64) ([]string, error)
	TrimBatchIndex(ctx context.Context) (int64, error)
	DropLive(ctx context.Context, id string) error
	BatchEventsOut(ctx context.Context, id string) (bool, error)
	ExpireBatch(ctx context.Context, id string) (lifecycle.Transition, error)
	FinishBatch(ctx context.Context, id string) (*lifecycle.Batch, error)
	Stranded(ctx context.Context, batchID string, before time.Time, limit int64) ([]lifecycle.Stranded, error)
	EndStranded(ctx context.Context, ref lifecycle.Ref, leaseBefore time.Time, to lifecycle.State, f *lifecycle.Failure) (lifecycle.Transition, error)

	// Escalate starts a racing copy (escalation.go).
	Escalate(ctx context.Context, ref lifecycle.Ref, model string) (started bool, reason string, err error)
}

// Queue is what the worker needs of the JetStream transport (satisfied by
// *queue.Client).
type Queue interface {
	Consume(ctx context.Context, o transport.ConsumeOptions) (transport.Consumer, error)
	EncodeResult(ctx context.Context, res *lifecycle.Result) ([]byte, error)
	PublishEncodedResult(ctx context.Context, res *lifecycle.Result, data []byte, resultSubject string) error
	PublishBatchEvent(ctx context.Context, ev lifecycle.BatchEvent) error
	SubscribeControl(fn func(lifecycle.ControlEvent)) (stop func() error, err error)
	PublishHold(ctx context.Context, budget, model string) error

	// Racing copies (escalation): read the original's message, publish the
	// copy's, abort the loser's call.
	RequestAt(ctx context.Context, seq uint64) (*lifecycle.Request, error)
	PublishRequest(ctx context.Context, req *lifecycle.Request) error
	PublishSupersede(ctx context.Context, requestID, by string) error

	// Reading and removing a batch's queued messages (EndQueued, the sweep).
	ScanBatch(ctx context.Context, batchID string, fn func(transport.Queued) bool) (uint64, error)
	PurgeBatch(ctx context.Context, batchID string, before uint64) (uint64, error)
	MessageExists(ctx context.Context, seq uint64) (bool, error)
	DeleteRequest(ctx context.Context, seq uint64) error
}

// Upstream is what the worker needs of the HTTP executor (satisfied by
// *httpclient.Client).
type Upstream interface {
	Do(ctx context.Context, req *lifecycle.Request, call httpclient.Call) *httpclient.Response
	Routed(model string) bool
	// Budget names what a call's rate-limit budget is shared with (never
	// an API key).
	Budget(model string, call httpclient.Call) string
}

// Queued is a request message read from the stream by a scan (satisfied
// by transport.Queued); the contract is pkg/transport's.
type Queued = transport.Queued

// Delivery is one delivered message (satisfied by *queue.Delivery); the
// contract is pkg/transport's.
type Delivery = transport.Delivery
