// Package deployments_test checks the files under deployments/ offline:
// the Prometheus alert rules parse and validate as `promtool check rules`
// does (rulefmt), every PromQL expression of the rules and of the Grafana
// dashboard parses, and every metric they name is one salvo serves.
package deployments_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/gateway"
	"github.com/salvo-run/salvo/internal/testleak"
	"github.com/salvo-run/salvo/pkg/worker"
)

func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }

// served are the metric families /metrics serves: the worker's, the
// readiness gauge internal/config registers, the gateway's, and
// Prometheus's own "up".
func served() []string {
	out := slices.Concat(worker.MetricNames, gateway.MetricNames, []string{"salvo_dependency_up", "up"})
	return out
}

// family is the metric a selector names, without a histogram's suffix.
func family(name string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, "_seconds"+suf) {
			return strings.TrimSuffix(name, suf)
		}
	}
	return name
}

// metricsIn parses expr and returns the metric names its selectors use.
func metricsIn(t *testing.T, p parser.Parser, expr string) []string {
	t.Helper()
	e, err := p.ParseExpr(expr)
	require.NoError(t, err, expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			require.NotEmpty(t, vs.Name, "a selector without a metric name: %s", expr)
			names = append(names, vs.Name)
		}
		return nil
	})
	require.NotEmpty(t, names, expr)
	return names
}

func TestAlertRulesAreValidAndUseServedMetrics(t *testing.T) {
	t.Parallel()
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile("prometheus/salvo-alerts.yaml", false, model.UTF8Validation, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.Empty(t, errs)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			require.NotEmpty(t, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			for _, name := range metricsIn(t, p, r.Expr) {
				require.Contains(t, served(), family(name), "alert %s uses %s, which no salvo process serves", r.Alert, name)
			}
		}
	}
	for _, want := range []string{"SalvoConsumerStuck", "SalvoRetryStorm", "SalvoLeaseLosses", "SalvoBatchNearDeadline", "SalvoRedisDown", "SalvoNATSDown"} {
		require.Contains(t, alerts, want)
	}
}

func TestDashboardQueriesParseAndUseServedMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("grafana/salvo-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.NotEmpty(t, dash.Panels)
	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	for _, panel := range dash.Panels {
		require.NotEmpty(t, panel.Targets, panel.Title)
		for _, tg := range panel.Targets {
			// Grafana's variables are not PromQL: $model matches any model here.
			expr := strings.ReplaceAll(tg.Expr, "$model", ".*")
			for _, name := range metricsIn(t, p, expr) {
				require.Contains(t, served(), family(name), "panel %q uses %s, which no salvo process serves", panel.Title, name)
				used[family(name)] = true
			}
		}
	}
	for _, name := range []string{"salvo_requests_total", "salvo_upstream_duration_seconds", "salvo_requests_in_flight",
		"salvo_queue_pending_messages", "salvo_request_failures_total", "salvo_retries_total", "salvo_ratelimit_wait_seconds"} {
		require.True(t, used[name], "the dashboard shows %s", name)
	}
}
