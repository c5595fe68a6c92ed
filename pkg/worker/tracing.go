package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/httpclient"
)

// tracerName is the instrumentation scope of the worker's spans.
const tracerName = "github.com/salvo-run/salvo/pkg/worker"

// Span names of a delivery's trace (docs/ARCHITECTURE.md, Observability).
const (
	spanProcess = "salvo.worker.process"
	spanClaim   = "salvo.claim"
	spanAdmit   = "salvo.ratelimit.admit"
	spanCall    = "salvo.upstream.call"
	spanRecord  = "salvo.record"
	spanPublish = "salvo.result.publish"
)

// noSpan is what the span helpers return when tracing is off: its methods
// do nothing and cost nothing.
var noSpan = trace.SpanFromContext(context.Background())

// startTrace starts the delivery's span as a child of the producer's
// context carried in the message headers. With tracing off (no tracer
// provider) it does nothing: no context, no span, no allocation.
func (x *execution) startTrace() trace.Span {
	if x.w.tracer == nil {
		return noSpan
	}
	parent := x.d.TraceContext(context.Background())
	var s trace.Span
	x.tctx, s = x.w.tracer.Start(parent, spanProcess, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("salvo.model", x.req.Model),
			attribute.String("salvo.batch_id", x.req.BatchID),
			attribute.String("salvo.request_id", x.req.ID),
			attribute.Int64("salvo.delivery", int64(min(x.d.NumDelivered(), 1<<62))),
		))
	return s
}

// span starts a child of the delivery's span (noSpan when tracing is off).
func (x *execution) span(name string, kind trace.SpanKind) trace.Span {
	if x.tctx == nil {
		return noSpan
	}
	_, s := x.w.tracer.Start(x.tctx, name, trace.WithSpanKind(kind))
	return s
}

// traceParent is the W3C traceparent of s, sent upstream with the call so
// the upstream's spans join the trace under the call's span; when tracing
// is off, the producer's traceparent passes through unchanged.
func (x *execution) traceParent(s trace.Span) string {
	sc := s.SpanContext()
	if !sc.IsValid() {
		return x.d.TraceParent()
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// endCall ends the upstream call's span with what came of the call.
func endCall(s trace.Span, resp *httpclient.Response) {
	defer s.End()
	if !s.IsRecording() {
		return
	}
	s.SetAttributes(attribute.Int("http.response.status_code", resp.Status),
		attribute.Int("salvo.transport_retries", resp.TransportRetries))
	if resp.Failure != nil {
		s.SetStatus(codes.Error, string(resp.Failure.Code))
	}
}
