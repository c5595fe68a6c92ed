package worker_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/worker"
)

// A small run with known failures: the counters /metrics serves equal what
// happened — requests ended by outcome, failures by reason, retries and
// retry denials by reason, upstream calls by status class — and nothing is
// left in flight.
func TestMetricsCountWhatHappened(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{mock: mockupstream.Options{Models: map[string]mockupstream.Script{
		"obs/flaky":   {Sequence: []int{500, 200}},      // retried once, then completed
		"obs/bad":     {Sequence: []int{400}},           // failed for good at once
		"obs/exhaust": {Sequence: []int{500, 500, 500}}, // retried once, then out of retries
	}}})
	mp, scrape := newScrapedMeter(t)
	e.startWorker(t, workerOpts{
		meter: mp,
		cfg:   worker.Config{LagInterval: time.Second, Retry: lifecycle.RetryPolicy{MaxRetries: 1, Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}},
	})
	runs := []struct {
		model string
		n     int
	}{{"obs/ok", 3}, {"obs/flaky", 2}, {"obs/bad", 2}, {"obs/exhaust", 1}}
	for i, r := range runs {
		id := "b-metrics-" + strconv.Itoa(i)
		e.publish(t, e.newBatch(t, id, r.model, r.n, time.Hour))
		e.waitResults(t, id, r.n, 30*time.Second)
	}

	got := scrape()
	want := map[string]float64{
		`salvo_requests_total{model="obs/ok",outcome="completed"}`:                    3,
		`salvo_requests_total{model="obs/flaky",outcome="completed"}`:                 2,
		`salvo_requests_total{model="obs/bad",outcome="failed"}`:                      2,
		`salvo_requests_total{model="obs/exhaust",outcome="failed"}`:                  1,
		`salvo_request_failures_total{model="obs/bad",reason="non_retriable_status"}`: 2,
		`salvo_request_failures_total{model="obs/exhaust",reason="retriable_status"}`: 1,
		`salvo_retries_total{model="obs/flaky",reason="retriable_status"}`:            2,
		`salvo_retries_total{model="obs/exhaust",reason="retriable_status"}`:          1,
		`salvo_retry_denials_total{model="obs/exhaust",reason="max_retries"}`:         1,
		`salvo_upstream_duration_seconds_count{model="obs/ok",status="2xx"}`:          3,
		`salvo_upstream_duration_seconds_count{model="obs/flaky",status="2xx"}`:       2,
		`salvo_upstream_duration_seconds_count{model="obs/flaky",status="5xx"}`:       2,
		`salvo_upstream_duration_seconds_count{model="obs/bad",status="4xx"}`:         2,
		`salvo_upstream_duration_seconds_count{model="obs/exhaust",status="5xx"}`:     2,
		`salvo_ratelimit_wait_seconds_count{model="obs/ok"}`:                          3,
	}
	for series, v := range want {
		require.True(t, hasSeries(got, series), "%s not served", series)
		require.InDelta(t, v, got[series], 0, series)
	}
	for series := range got {
		if !strings.HasPrefix(series, "salvo_") {
			continue
		}
		for _, bad := range []string{"request_id", "batch_id", "b-metrics"} {
			require.NotContains(t, series, bad, "no id in a label")
		}
		require.Contains(t, worker.MetricNames, family(series), "a served metric is listed in MetricNames")
		if strings.HasPrefix(series, "salvo_requests_total") || strings.HasPrefix(series, "salvo_retries_total") {
			require.Contains(t, want, series, "no other outcome or retry was counted")
		}
	}
	// Nothing stays in flight, and the queue lag reads an empty backlog.
	require.Eventually(t, func() bool {
		got := scrape()
		return got[`salvo_requests_in_flight{model="obs/ok"}`] == 0 &&
			hasSeries(got, `salvo_queue_pending_messages{model="obs/ok"}`) &&
			got[`salvo_queue_pending_messages{model="obs/ok"}`] == 0
	}, 10*time.Second, 20*time.Millisecond)
}

// newScrapedMeter is a meter provider exported the way cmd/worker serves
// it, and a function that GETs /metrics and returns every sample by its
// series (name{labels}).
func newScrapedMeter(t testing.TB) (*sdkmetric.MeterProvider, func() map[string]float64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := promexporter.New(promexporter.WithRegisterer(reg), promexporter.WithoutScopeInfo(), promexporter.WithoutTargetInfo())
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return mp, func() map[string]float64 { return scrapeURL(t, srv.URL) }
}

// scrapeURL reads a Prometheus text exposition into series → value.
func scrapeURL(t testing.TB, url string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

func hasSeries(m map[string]float64, s string) bool { _, ok := m[s]; return ok }

// family is the metric name of a series: without its labels and without
// a histogram's _bucket, _sum and _count suffixes.
func family(series string) string {
	name, _, _ := strings.Cut(series, "{")
	if strings.HasSuffix(name, "_seconds_bucket") || strings.HasSuffix(name, "_seconds_sum") || strings.HasSuffix(name, "_seconds_count") {
		name = name[:strings.LastIndexByte(name, '_')]
	}
	return name
}
