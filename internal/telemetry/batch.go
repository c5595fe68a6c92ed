package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// tracerName is the instrumentation scope of the submitting side's spans.
const tracerName = "github.com/salvo-run/salvo/internal/telemetry"

// Span names of the submitting side (the producer and the gateway).
const (
	SpanSubmit  = "salvo.batch.submit"
	SpanPublish = "salvo.request.publish"
)

// BatchTrace is the span of one batch's submission and the parent of its
// requests' publish spans. The zero value and one made from a nil provider
// make no span and cost nothing.
type BatchTrace struct {
	tracer trace.Tracer
	ctx    context.Context
	span   trace.Span
}

// StartBatch starts the batch's span under ctx; tp nil (tracing off) makes
// none.
func StartBatch(ctx context.Context, tp trace.TracerProvider, batchID string) *BatchTrace {
	if tp == nil {
		return &BatchTrace{}
	}
	b := &BatchTrace{tracer: tp.Tracer(tracerName)}
	b.ctx, b.span = b.tracer.Start(ctx, SpanSubmit, trace.WithAttributes(attribute.String("salvo.batch_id", batchID)))
	return b
}

// Publish runs publish for req under a producer span that is the parent
// of the worker's: the publisher puts its W3C context in the message's
// headers. Without tracing it calls publish with ctx as it is.
func (b *BatchTrace) Publish(ctx context.Context, req *lifecycle.Request, publish func(context.Context) error) error {
	if b.tracer == nil {
		return publish(ctx)
	}
	sctx, s := b.tracer.Start(trace.ContextWithSpan(ctx, b.span), SpanPublish, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("salvo.request_id", req.ID), attribute.String("salvo.model", req.Model)))
	defer s.End()
	err := publish(sctx)
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	return err
}

// End ends the batch's span, marking it failed when err is not nil.
func (b *BatchTrace) End(err error) {
	if b.span == nil {
		return
	}
	if err != nil {
		b.span.SetStatus(codes.Error, err.Error())
	}
	b.span.End()
}
