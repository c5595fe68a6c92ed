package worker

import (
	"context"
	"time"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
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
	MarkPublished(ctx context.Context, refs []lifecycle.Ref) error
	ForceFail(ctx context.Context, req *lifecycle.Request, o lifecycle.Outcome) (lifecycle.Transition, error)
	AcquireModelSlot(ctx context.Context, model, holder string, limit int, ttl time.Duration) (bool, error)
	ReleaseModelSlot(ctx context.Context, model, holder string) error
	RefreshModelSlots(ctx context.Context, model string, holders []string, ttl time.Duration) error
}

// Queue is what the worker needs of the JetStream transport (satisfied by
// *queue.Client).
type Queue interface {
	Consume(ctx context.Context, o transport.ConsumeOptions) (transport.Consumer, error)
	EncodeResult(ctx context.Context, res *lifecycle.Result) ([]byte, error)
	PublishEncodedResult(ctx context.Context, res *lifecycle.Result, data []byte, resultSubject string) error
	PublishBatchEvent(ctx context.Context, ev lifecycle.BatchEvent) error
	SubscribeControl(fn func(lifecycle.ControlEvent)) (stop func() error, err error)
}

// Upstream is what the worker needs of the HTTP executor (satisfied by
// *httpclient.Client).
type Upstream interface {
	Do(ctx context.Context, req *lifecycle.Request, call httpclient.Call) *httpclient.Response
	Routed(model string) bool
}

// Delivery is one delivered message (satisfied by *queue.Delivery); the
// contract is pkg/transport's.
type Delivery = transport.Delivery
