package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/gateway"
)

// The gateway counts its answers by route pattern and status, never by
// path (no ids in labels), and the request messages it published.
func TestMetricsCountRoutesAndPublishedRequests(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	f := upload(t, e.a, "input.jsonl", chatLine("r1", modelOK, "one"), chatLine("r2", modelOK, "two"))
	b := newBatch(t, e.a, f.ID)
	waitStatus(t, e.a, b.ID, openai.BatchStatusCompleted, 30*time.Second)

	rec := httptest.NewRecorder()
	e.tel.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics", http.NoBody))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	text := string(body)
	require.Contains(t, text, "salvo_gateway_requests_published_total 2\n")
	require.Contains(t, text, `salvo_gateway_http_requests_total{code="200",route="POST /v1/batches"} 1`+"\n")
	require.Contains(t, text, `route="GET /v1/batches/{id}"`)
	require.NotContains(t, text, b.ID, "no id in a label")
	require.NotContains(t, text, f.ID, "no id in a label")
	for _, line := range strings.Split(text, "\n") {
		if name, _, _ := strings.Cut(line, "{"); strings.HasPrefix(name, "salvo_") {
			name, _, _ = strings.Cut(name, " ")
			require.Contains(t, gateway.MetricNames, name)
		}
	}
}
