package worker

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// meterName is the instrumentation scope of the worker's instruments.
const meterName = "github.com/salvo-run/salvo/pkg/worker"

// maxModelLabels bounds the model label: the first maxModelLabels models a
// worker sees keep their name, later ones are counted as otherModel. Model
// names come from the requests (routes with a default accept any), so
// without a bound a client could grow the series without limit.
const (
	maxModelLabels = 200
	otherModel     = "other"
)

// Latency buckets (seconds) of upstream calls and budget waits.
var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// MetricNames are the Prometheus names of the worker's metrics (what
// /metrics serves once each has a sample); docs/ARCHITECTURE.md describes
// them and deployments/ builds its dashboard and alerts on them.
var MetricNames = []string{
	"salvo_requests_total", "salvo_request_failures_total", "salvo_requests_in_flight",
	"salvo_upstream_duration_seconds", "salvo_upstream_transport_retries_total",
	"salvo_retries_total", "salvo_retry_denials_total",
	"salvo_lease_losses_total", "salvo_claim_conflicts_total", "salvo_batch_events_total",
	"salvo_ratelimit_wait_seconds", "salvo_ratelimit_holds_total",
	"salvo_ratelimit_adaptive_limit", "salvo_ratelimit_waiting",
	"salvo_queue_pending_messages", "salvo_queue_oldest_pending_age_seconds",
	"salvo_batches_live", "salvo_batches_near_deadline",
	"salvo_escalations_total", "salvo_escalation_wasted_calls_total",
}

// metrics are the worker's instruments, created once in New. Every
// recording goes through a cached attribute set (labels), so the hot path
// builds no attribute slice. Labels are enums (state, failure code, denial,
// event type) and the bounded model label; never an id.
type metrics struct {
	requests         metric.Int64Counter       // salvo_requests_total{model,outcome}
	failures         metric.Int64Counter       // salvo_request_failures_total{model,reason}
	inflight         metric.Int64UpDownCounter // salvo_requests_in_flight{model}
	upstream         metric.Float64Histogram   // salvo_upstream_duration_seconds{model,status}
	transportRetries metric.Int64Counter       // salvo_upstream_transport_retries_total{model}
	retries          metric.Int64Counter       // salvo_retries_total{model,reason}
	denials          metric.Int64Counter       // salvo_retry_denials_total{model,reason}
	leaseLosses      metric.Int64Counter       // salvo_lease_losses_total{model}
	claimConflicts   metric.Int64Counter       // salvo_claim_conflicts_total{model,reason}
	batchEvents      metric.Int64Counter       // salvo_batch_events_total{type}
	budgetWait       metric.Float64Histogram   // salvo_ratelimit_wait_seconds{model}
	holds            metric.Int64Counter       // salvo_ratelimit_holds_total{model}

	labels  labels
	lag     lagGauges
	batches batchGauges
}

// newMetrics creates the instruments on mp (nil: a no-op provider) and the
// gauges read from limits at each collection.
func newMetrics(mp metric.MeterProvider, limits *ratelimit.Limiter, esc *escalationStats, configured []string) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(meterName)
	x := &metrics{labels: labels{models: make(map[string]struct{}), pinned: make(map[string]struct{})}}
	for _, m := range configured {
		x.labels.pinned[m] = struct{}{}
	}
	var errs errList
	x.requests = errs.counter(m, "salvo_requests", "Requests this worker ended, by final state (outcome).")
	x.failures = errs.counter(m, "salvo_request_failures", "Requests this worker ended failed, by failure code (reason).")
	inflight, err := m.Int64UpDownCounter("salvo_requests_in_flight", metric.WithDescription("Deliveries being worked on now."))
	if errs.err == nil {
		errs.err = err
	}
	x.inflight = inflight
	x.upstream = errs.histogram(m, "salvo_upstream_duration", "Upstream calls (transport retries included), by status class.")
	x.transportRetries = errs.counter(m, "salvo_upstream_transport_retries", "In-process retries of upstream calls that got no response.")
	x.retries = errs.counter(m, "salvo_retries", "Attempts that failed and were scheduled again, by failure code (reason).")
	x.denials = errs.counter(m, "salvo_retry_denials", "Retriable failures refused another attempt, by reason (max_retries, deadline).")
	x.leaseLosses = errs.counter(m, "salvo_lease_losses", "Leases lost while a call or write was under way.")
	x.claimConflicts = errs.counter(m, "salvo_claim_conflicts", "Claims refused: the request held by another worker or its retry not due (reason).")
	x.batchEvents = errs.counter(m, "salvo_batch_events", "Batch events this worker published, by type.")
	x.budgetWait = errs.histogram(m, "salvo_ratelimit_wait", "Time spent waiting for upstream budget before a call.")
	x.holds = errs.counter(m, "salvo_ratelimit_holds", "Upstream responses that asked for a hold (429/503 with Retry-After).")
	if errs.err != nil {
		return nil, errs.err
	}
	adaptive, err := m.Int64ObservableGauge("salvo_ratelimit_adaptive_limit", metric.WithDescription("The adaptive concurrency limit of each budget and model."))
	if err != nil {
		return nil, err
	}
	waiting, err := m.Int64ObservableGauge("salvo_ratelimit_waiting", metric.WithDescription("Calls waiting for an adaptive concurrency place."))
	if err != nil {
		return nil, err
	}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range limits.Status() {
			if s.AdaptiveLimit == 0 {
				continue
			}
			set := metric.WithAttributes(attribute.String("budget", budgetLabel(s.Budget)), attribute.String("model", x.labels.model(s.Model)))
			o.ObserveInt64(adaptive, int64(s.AdaptiveLimit), set)
			o.ObserveInt64(waiting, int64(s.AdaptiveWaiting), set)
		}
		return nil
	}, adaptive, waiting); err != nil {
		return nil, err
	}
	if err := x.lag.register(m, &x.labels); err != nil {
		return nil, err
	}
	if err := x.batches.register(m); err != nil {
		return nil, err
	}
	if err := esc.register(m); err != nil {
		return nil, err
	}
	return x, nil
}

// errList keeps the first error of a run of instrument creations.
type errList struct{ err error }

func (e *errList) counter(m metric.Meter, name, desc string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithDescription(desc))
	if e.err == nil {
		e.err = err
	}
	return c
}

func (e *errList) histogram(m metric.Meter, name, desc string) metric.Float64Histogram {
	h, err := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	if e.err == nil {
		e.err = err
	}
	return h
}

// ended counts a request this worker's write ended.
func (m *metrics) ended(ctx context.Context, model string, st lifecycle.State, f *lifecycle.ResultError) {
	m.requests.Add(ctx, 1, m.labels.get(model, "outcome", string(st)).add...)
	if st == lifecycle.StateFailed && f != nil {
		m.failures.Add(ctx, 1, m.labels.get(model, "reason", string(f.Code)).add...)
	}
}

// called records one upstream call: its latency, its transport retries
// and a hold the upstream asked for.
func (m *metrics) called(ctx context.Context, model string, resp *httpclient.Response) {
	m.upstream.Record(ctx, resp.Duration.Seconds(), m.labels.get(model, "status", statusClass(resp.Status)).rec...)
	if resp.TransportRetries > 0 {
		m.transportRetries.Add(ctx, int64(resp.TransportRetries), m.labels.get(model, "", "").add...)
	}
	if resp.Limits.HoldFor > 0 {
		m.holds.Add(ctx, 1, m.labels.get(model, "", "").add...)
	}
}

// waited records the time a call waited for its upstream budget.
func (m *metrics) waited(ctx context.Context, model string, d time.Duration) {
	m.budgetWait.Record(ctx, d.Seconds(), m.labels.get(model, "", "").rec...)
}

// retried counts an attempt scheduled again after failing with code.
func (m *metrics) retried(ctx context.Context, model string, code lifecycle.FailureCode) {
	m.retries.Add(ctx, 1, m.labels.get(model, "reason", string(code)).add...)
}

// denied counts a retriable failure refused another attempt.
func (m *metrics) denied(ctx context.Context, model string, why lifecycle.Denial) {
	m.denials.Add(ctx, 1, m.labels.get(model, "reason", string(why)).add...)
}

// conflict counts a claim refused because of another holder or an
// attempt not due yet (reason "held" or "not_yet").
func (m *metrics) conflict(ctx context.Context, model, reason string) {
	m.claimConflicts.Add(ctx, 1, m.labels.get(model, "reason", reason).add...)
}

// leaseLost counts a lease lost under a call or a write.
func (m *metrics) leaseLost(model string) {
	m.leaseLosses.Add(context.Background(), 1, m.labels.get(model, "", "").add...)
}

// batchEvent counts a batch event this worker published.
func (m *metrics) batchEvent(ctx context.Context, t lifecycle.BatchEventType) {
	m.batchEvents.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("type", string(t)))))
}

// budgetLabel is a budget's label: its configured name, or "key" for a
// budget named by a hash of an API key (one per client key when a route
// takes per-request keys: unbounded, and a fingerprint of a secret).
func budgetLabel(budget string) string {
	if strings.HasPrefix(budget, "key:") {
		return "key"
	}
	return budget
}

// statusClass is the status label: "2xx" … "5xx", or "none" when no
// response arrived.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}

// labels caches the attribute sets of the recordings, keyed by the bounded
// model label and one more label.
type labels struct {
	// pinned are the configured models (routes, limits, budgets,
	// escalations): they always keep their names. Other names (requests
	// the default route serves) take up to maxModelLabels more, then
	// otherModel, so no client can push a configured model out.
	pinned map[string]struct{} // read-only after newMetrics
	mu     sync.RWMutex
	models map[string]struct{}
	sets   sync.Map // labelKey → *labelSet
}

type labelKey struct{ model, key, value string }

// model is the model's label: its name, or otherModel once
// maxModelLabels others were seen.
func (l *labels) model(name string) string {
	if _, ok := l.pinned[name]; ok {
		return name
	}
	l.mu.RLock()
	_, ok := l.models[name]
	n := len(l.models)
	l.mu.RUnlock()
	if ok {
		return name
	}
	if n >= maxModelLabels {
		return otherModel
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.models) >= maxModelLabels {
		return otherModel
	}
	l.models[name] = struct{}{}
	return name
}

// labelSet is one cached attribute set as the option lists the
// instruments take: passing a cached list allocates nothing per recording.
type labelSet struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

// get is the attribute set of model and, when key is not "", key=value.
func (l *labels) get(model, key, value string) *labelSet {
	k := labelKey{l.model(model), key, value}
	if o, ok := l.sets.Load(k); ok {
		return o.(*labelSet)
	}
	kv := []attribute.KeyValue{attribute.String("model", k.model)}
	if key != "" {
		kv = append(kv, attribute.String(key, value))
	}
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	set, _ := l.sets.LoadOrStore(k, &labelSet{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}})
	return set.(*labelSet)
}
