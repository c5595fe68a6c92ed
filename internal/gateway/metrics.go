package gateway

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// MetricNames are the Prometheus names of the gateway's own metrics
// (cmd/gateway serves them at /metrics with the process's runtime metrics).
var MetricNames = []string{"salvo_gateway_http_requests_total", "salvo_gateway_requests_published_total"}

// metrics are the gateway's instruments. The route label is the pattern
// the request matched ("POST /v1/batches", "/" for anything else), never
// its path: ids stay out of the labels.
type metrics struct {
	http      metric.Int64Counter // salvo_gateway_http_requests_total{route,code}
	published metric.Int64Counter // salvo_gateway_requests_published_total
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/salvo-run/salvo/internal/gateway")
	h, err := m.Int64Counter("salvo_gateway_http_requests", metric.WithDescription("HTTP requests answered, by route pattern and status code."))
	if err != nil {
		return nil, err
	}
	p, err := m.Int64Counter("salvo_gateway_requests_published", metric.WithDescription("Request messages the gateway published for its batches."))
	if err != nil {
		return nil, err
	}
	return &metrics{http: h, published: p}, nil
}

// count wraps next, counting each answer by route and status.
func (m *metrics) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.http.Add(r.Context(), 1, metric.WithAttributes(attribute.String("route", r.Pattern), attribute.String("code", strconv.Itoa(sw.code))))
	})
}

// statusWriter remembers the status written; it passes Flush on for the
// streamed downloads.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *metrics) publishedOne(ctx context.Context) { m.published.Add(ctx, 1) }
