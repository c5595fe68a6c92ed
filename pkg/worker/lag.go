package worker

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/salvo-run/salvo/pkg/transport"
)

// LagIntervalDefault is how often the worker reads its consumers' backlog
// for the queue lag gauges.
const LagIntervalDefault = 15 * time.Second

// lagGauges serve the last backlog read (lagLoop) as
// salvo_queue_pending_messages and salvo_queue_oldest_pending_age_seconds;
// a collection reads the snapshot, never the server.
type lagGauges struct {
	last atomic.Pointer[[]transport.ModelLag]
}

func (g *lagGauges) register(m metric.Meter, l *labels) error {
	pending, err := m.Int64ObservableGauge("salvo_queue_pending_messages",
		metric.WithDescription("Messages of the model's consumer not yet delivered or not yet acked (read every lag interval)."))
	if err != nil {
		return err
	}
	oldest, err := m.Float64ObservableGauge("salvo_queue_oldest_pending_age",
		metric.WithDescription("Age of the model's oldest message not yet acked (read every lag interval)."), metric.WithUnit("s"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		last := g.last.Load()
		if last == nil {
			return nil
		}
		for _, ml := range *last {
			set := metric.WithAttributes(attribute.String("model", l.model(ml.Model)))
			o.ObserveInt64(pending, int64(min(ml.Pending, 1<<62)), set)
			o.ObserveFloat64(oldest, ml.OldestAge.Seconds(), set)
		}
		return nil
	}, pending, oldest)
	return err
}

// lagLoop reads the consumers' backlog every LagInterval until the worker
// stops. After two reads in a row that failed outright (NATS away) the
// gauges are dropped rather than kept frozen at a stale backlog; the
// dependency gauge and /readyz say why.
func (w *Worker) lagLoop(r transport.LagReporter) {
	interval := w.config().LagInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	failed := 0
	for {
		ctx, cancel := context.WithTimeout(w.bg, interval)
		lags, err := r.Lag(ctx)
		cancel()
		if err != nil {
			w.log.Debug().Err(err).Msg("reading the queue lag failed")
		}
		if lags != nil || err == nil {
			failed = 0
			w.metrics.lag.last.Store(&lags)
		} else if failed++; failed >= 2 {
			w.metrics.lag.last.Store(nil)
		}
		select {
		case <-w.bg.Done():
			return
		case <-t.C:
		}
	}
}
