// Package telemetry builds a process's OpenTelemetry providers: a meter
// provider whose instruments are served in the Prometheus text format (the
// /metrics handler) and, when the standard OTEL_* variables ask for one, a
// tracer provider exporting over OTLP. Only cmd/ wires it; the packages
// that record take a metric.MeterProvider and a trace.TracerProvider.
//
// Tracing is off unless OTEL_TRACES_EXPORTER is "otlp" (and OTEL_SDK_DISABLED
// is not "true"): then Tracer is nil, and the instrumented code creates no
// span at all (it forwards the producer's traceparent upstream unchanged).
// OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
// chooses "grpc" or "http/protobuf" (the default); the endpoint, headers
// and the sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG) are read by
// the exporters and the SDK themselves.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Providers are a process's meter and tracer providers.
type Providers struct {
	// Meter records into the registry Handler serves.
	Meter metric.MeterProvider
	// Tracer is nil when tracing is off.
	Tracer trace.TracerProvider

	registry *prometheus.Registry
	meter    *sdkmetric.MeterProvider
	tracer   *sdktrace.TracerProvider
}

// ErrConfig wraps every error about the OTEL_* variables.
var ErrConfig = errors.New("telemetry")

// Setup builds the providers of the service named service, reading the
// OTEL_* variables through getenv (nil: none set).
func Setup(ctx context.Context, service string, getenv func(string) string) (*Providers, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	p := &Providers{registry: prometheus.NewRegistry()}
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := promexporter.New(promexporter.WithRegisterer(p.registry), promexporter.WithoutScopeInfo(), promexporter.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("%w: prometheus exporter: %w", ErrConfig, err)
	}
	p.meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	p.Meter = p.meter

	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return p, nil
	}
	switch kind := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); kind {
	case "", "none":
		return p, nil
	case "otlp":
	default:
		return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: want otlp or none", ErrConfig, kind)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exporter *otlptrace.Exporter
	switch proto {
	case "", "http/protobuf":
		exporter, err = otlptracehttp.New(ctx)
	case "grpc":
		exporter, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", ErrConfig, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: otlp exporter: %w", ErrConfig, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service)))
	if err != nil {
		res = resource.Default()
	}
	p.tracer = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	p.Tracer = p.tracer
	return p, nil
}

// Handler serves the metrics in the Prometheus text format.
func (p *Providers) Handler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes the spans still buffered and stops the providers.
func (p *Providers) Shutdown(ctx context.Context) error {
	var errs []error
	if p.tracer != nil {
		errs = append(errs, p.tracer.Shutdown(ctx))
	}
	errs = append(errs, p.meter.Shutdown(ctx))
	return errors.Join(errs...)
}
