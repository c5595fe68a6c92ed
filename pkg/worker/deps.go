package worker

import (
	"context"
	"time"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/transport"
)

// Store is what the worker needs of the Redis store (satisfied by *state.Store).
type Store interface {
	Claim(ctx context.Context, a state.ClaimArgs) (state.Claim, error)
	Batch(ctx context.Context, id string) (lifecycle.Batch, error)
	Request(ctx context.Context, ref lifecycle.Ref) (state.Record, error)
	Complete(ctx context.Context, p lifecycle.Processing, o state.Outcome) (state.Transition, error)
	Fail(ctx context.Context, h lifecycle.Held, o state.Outcome) (state.Transition, error)
	Cancel(ctx context.Context, h lifecycle.Held, o state.Outcome) (state.Transition, error)
	Expire(ctx context.Context, h lifecycle.Held, o state.Outcome) (state.Transition, error)
	Retry(ctx context.Context, p lifecycle.Processing, f *lifecycle.Failure, notBefore time.Time) (state.Transition, error)
	Release(ctx context.Context, h lifecycle.Held) (state.Transition, error)
	Refresh(ctx context.Context, hs []lifecycle.Held) []error
	MarkPublished(ctx context.Context, refs []lifecycle.Ref) error
	ForceFail(ctx context.Context, req *lifecycle.Request, o state.Outcome) (state.Transition, error)
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
	PublishBatchEvent(ctx context.Context, ev queue.BatchEvent) error
	SubscribeControl(fn func(queue.ControlEvent)) (stop func() error, err error)
}

// Upstream is what the worker needs of the HTTP executor (satisfied by
// *httpclient.Client).
type Upstream interface {
	Do(ctx context.Context, req *lifecycle.Request, call httpclient.Call) *httpclient.Response
	Routed(model string) bool
}

// Delivery is one delivered message (satisfied by *queue.Delivery).
type Delivery interface {
	Request() *lifecycle.Request
	NumDelivered() uint64
	TraceParent() string
	InProgress(ctx context.Context) error
	Ack(ctx context.Context) error
	Nak(ctx context.Context, delay time.Duration) error
	Term(ctx context.Context, reason string) error
}

var (
	_ Store    = (*state.Store)(nil)
	_ Queue    = (*queue.Client)(nil)
	_ Upstream = (*httpclient.Client)(nil)
	_ Delivery = (*queue.Delivery)(nil)
)
