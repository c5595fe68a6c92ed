package worker_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkTelemetry is BenchmarkPipeline (64 handlers) with the worker's
// telemetry as a deployment runs it, in the same run so the figures
// compare (docs/BENCHMARKS.md):
//
//   - off: metrics recorded into a Prometheus exporter, no tracer
//     provider (the default: no span is made, the producer's traceparent
//     passes upstream unchanged);
//   - noop-provider: the same with OTel's no-op tracer provider, so every
//     span call runs and records nothing;
//   - sampled-1pct: the SDK with a 1 % ratio sampler and a batching
//     exporter that discards what it gets (no network).
func BenchmarkTelemetry(b *testing.B) {
	const handlers = 64
	b.Run("tracing=off", func(b *testing.B) {
		mp, _ := newScrapedMeter(b)
		benchPipelineWith(b, handlers, workerOpts{meter: mp})
	})
	b.Run("tracing=noop-provider", func(b *testing.B) {
		mp, _ := newScrapedMeter(b)
		benchPipelineWith(b, handlers, workerOpts{meter: mp, tracer: tracenoop.NewTracerProvider()})
	})
	b.Run("tracing=sampled-1pct", func(b *testing.B) {
		mp, _ := newScrapedMeter(b)
		tp := trace.NewTracerProvider(trace.WithSampler(trace.ParentBased(trace.TraceIDRatioBased(0.01))),
			trace.WithBatcher(tracetest.NewNoopExporter()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		benchPipelineWith(b, handlers, workerOpts{meter: mp, tracer: tp})
	})
}
