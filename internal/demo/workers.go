package demo

import (
	"context"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/salvo-run/salvo/internal/config"
)

// requestsMetric is the instrument behind salvo_requests_total: the
// requests a worker's write ended, counted once each.
const requestsMetric = "salvo_requests"

// demoWorker is one in-process worker and the reader of its metrics.
type demoWorker struct {
	id     string
	reader *sdkmetric.ManualReader
}

// Share is what one worker did: the requests its writes ended, read from
// its own salvo_requests_total.
type Share struct {
	Worker string
	Ended  int64
}

// startWorkers starts o.Workers workers on their own connections, as
// worker pods would run (config.Start: pkg/worker over pkg/queue,
// pkg/state and pkg/httpclient), each with its own ID and metrics.
func (r *runner) startWorkers(ctx context.Context, settings config.Settings, getenv func(string) string) ([]demoWorker, error) {
	workers := make([]demoWorker, 0, r.o.Workers)
	for i := range r.o.Workers {
		s := settings
		s.Worker.ID = fmt.Sprintf("demo-worker-%d", i+1)
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		r.onClose(func() { _ = mp.Shutdown(context.WithoutCancel(ctx)) })
		p, err := config.Start(ctx, s, config.Options{
			Logger: r.o.Logger,
			Getenv: getenv,
			Name:   "salvo-" + s.Worker.ID,
			Meter:  mp,
		})
		if err != nil {
			return nil, fmt.Errorf("demo: %s: %w", s.Worker.ID, err)
		}
		r.onClose(func() {
			// Detached from ctx: the run may have timed out, the worker must
			// still hand its in-flight requests back.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			if err := p.Stop(stopCtx); err != nil {
				r.log.Warn().Err(err).Str("worker", s.Worker.ID).Msg("worker stop")
			}
		})
		workers = append(workers, demoWorker{id: s.Worker.ID, reader: reader})
	}
	wc := settings.WorkerConfig()
	r.printf("  workers   %d in-process workers (demo-worker-1..%d), %d calls in flight per model each, retry backoff %s..%s\n",
		len(workers), len(workers), wc.Concurrency.Default, wc.Retry.Backoff, wc.Retry.MaxBackoff)
	return workers, nil
}

// shares reads every worker's count of the requests it ended.
func shares(ctx context.Context, workers []demoWorker) ([]Share, error) {
	out := make([]Share, 0, len(workers))
	for _, w := range workers {
		var rm metricdata.ResourceMetrics
		if err := w.reader.Collect(ctx, &rm); err != nil {
			return nil, fmt.Errorf("demo: metrics of %s: %w", w.id, err)
		}
		s := Share{Worker: w.id}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == requestsMetric {
					for _, dp := range sum.DataPoints {
						s.Ended += dp.Value
					}
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}
