package transport

import (
	"context"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Delivery is one delivery of a request message. The handler must finish
// it with Ack, Nak or Term, or deliberately leave it (a lost lease) so the
// transport redelivers it later. *queue.Delivery implements it.
type Delivery interface {
	// Request is the decoded, validated request.
	Request() *lifecycle.Request
	// NumDelivered counts deliveries of this message, this one included (1
	// on the first delivery).
	NumDelivered() uint64
	// StreamSeq is the message's sequence in its stream.
	StreamSeq() uint64
	// Stored is when the stream stored the message.
	Stored() time.Time
	// TraceParent is the W3C traceparent header, "" when absent.
	TraceParent() string
	// TraceContext returns ctx carrying the producer's W3C trace context
	// from the message headers (ctx unchanged when there is none).
	TraceContext(ctx context.Context) context.Context
	// InProgress tells the transport the message is still being worked on.
	InProgress(ctx context.Context) error
	// Ack acknowledges the message; after a nil return it is gone.
	Ack(ctx context.Context) error
	// Nak asks for redelivery after delay (at once when delay <= 0).
	Nak(ctx context.Context, delay time.Duration) error
	// Term tells the transport never to deliver the message again.
	Term(ctx context.Context, reason string) error
}

// Handler runs one delivery, in its own goroutine. It must finish the
// delivery (Ack, Nak or Term) or deliberately leave it (lease lost).
type Handler func(ctx context.Context, d Delivery)

// ConsumeOptions configure Consume.
type ConsumeOptions struct {
	// Slots returns the capacity semaphore of a model (the same one every
	// time). Required.
	Slots func(model string) *Slots
	// Handler runs each valid delivery. Required.
	Handler Handler
	// Routable reports whether this worker can run requests for model
	// (it has a route for it). Consume creates a model's durable consumer
	// and fetch loop only for models it can route; the messages of other
	// models are left for a worker that routes them, or reported to
	// OnPoison as PoisonUnrouted when none does. It is asked again at every
	// discovery, so a reload that adds a route takes effect. Nil routes
	// every model.
	Routable func(model string) bool
	// OnPoison is called for each request message the queue gives up on
	// (see Poison): one that is not a valid request, or one JetStream
	// stopped redelivering. The queue removes the message once it returns
	// nil and hands it over again later otherwise. It may be called more
	// than once for one message (several workers reject the same message
	// on a junk subject; an advisory is redelivered), so it must be
	// idempotent. Nil logs the message and removes it, recording nothing.
	OnPoison func(ctx context.Context, p Poison) error
}

// Consumer is a running consumption, as Consume returns it (*queue.Consumer).
//
// Shutdown order: Stop (no new messages) → let in-flight handlers finish
// within the grace period (Wait) → cancel the rest through the ctx given
// to Consume → Wait.
type Consumer interface {
	// Stop stops fetching: no new message reaches a handler after it
	// returns. Running handlers continue. Safe to call twice.
	Stop()
	// Wait waits until every running handler has returned, or ctx ends.
	Wait(ctx context.Context) error
	// Healthy returns nil when the consumer is fetching normally, else an
	// error saying what is stale. Readiness probes use it.
	Healthy() error
}

// Queued is a request message read from the stream without delivering it
// (a scan of a batch's queued messages): its stream sequence and subject,
// and the decoded request, or Err when the message is not a valid request.
type Queued struct {
	Seq     uint64
	Subject string
	Request *lifecycle.Request
	Err     error
}

// ModelLag is the backlog of one model's consumer: Pending counts the
// messages not delivered yet and those delivered and not acked; OldestAge
// is how long the oldest of them has been in the stream.
type ModelLag struct {
	Model     string
	Pending   uint64
	OldestAge time.Duration
}

// LagReporter is implemented by a Consumer that can read its backlog.
type LagReporter interface {
	Lag(ctx context.Context) ([]ModelLag, error)
}
