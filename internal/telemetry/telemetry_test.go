package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/telemetry"
	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// Tracing is off by default and with OTEL_TRACES_EXPORTER=none or
// OTEL_SDK_DISABLED=true: no tracer provider at all.
func TestTracingIsOffUnlessAskedFor(t *testing.T) {
	t.Parallel()
	for _, kv := range []map[string]string{
		nil,
		{"OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
	} {
		p, err := telemetry.Setup(context.Background(), "test", env(kv))
		require.NoError(t, err)
		require.Nil(t, p.Tracer, "%v", kv)
		require.NoError(t, p.Shutdown(context.Background()))
	}
}

// OTEL_TRACES_EXPORTER=otlp makes a tracer over gRPC or HTTP; anything else
// is refused, naming the variable.
func TestOTLPExporterChosenByTheStandardVariables(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"", "http/protobuf", "grpc"} {
		p, err := telemetry.Setup(context.Background(), "test", env(map[string]string{
			"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": proto,
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
		}))
		require.NoError(t, err, proto)
		require.NotNil(t, p.Tracer, proto)
		require.NoError(t, p.Shutdown(context.Background()), "nothing buffered, nothing sent")
	}
	_, err := telemetry.Setup(context.Background(), "test", env(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}))
	require.ErrorContains(t, err, "OTEL_TRACES_EXPORTER")
	_, err = telemetry.Setup(context.Background(), "test", env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}))
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_PROTOCOL")
}

// The handler serves what the meter provider records, in the Prometheus
// text format, with the process's runtime metrics.
func TestHandlerServesRecordedMetrics(t *testing.T) {
	t.Parallel()
	p, err := telemetry.Setup(context.Background(), "test", nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Shutdown(context.Background())) }()
	c, err := p.Meter.Meter("test").Int64Counter("salvo_test_things")
	require.NoError(t, err)
	c.Add(context.Background(), 3)
	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/metrics", http.NoBody))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), "salvo_test_things_total 3\n")
	require.Contains(t, string(body), "go_goroutines")
	require.NotContains(t, string(body), "otel_scope_name", "no scope labels")
}
