package worker

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// nearDeadlineFraction: a live batch with work left and less than this
// fraction of its completion window left is near its deadline.
const nearDeadlineFraction = 0.1

// batchGauges are what the sweep leader saw of the live batches in its
// last full pass over them: salvo_batches_live and
// salvo_batches_near_deadline. Only the leader reports them (a worker that
// is not sweeping reports nothing), so max() over the fleet is the figure.
type batchGauges struct {
	live, near         atomic.Int64 // the pass under way
	shownLive, shownNr atomic.Int64
	shown              atomic.Bool
}

func (g *batchGauges) register(m metric.Meter) error {
	live, err := m.Int64ObservableGauge("salvo_batches_live",
		metric.WithDescription("Batches not final yet, as the sweep leader saw them in its last full pass."))
	if err != nil {
		return err
	}
	near, err := m.Int64ObservableGauge("salvo_batches_near_deadline",
		metric.WithDescription("Live batches with requests not ended and less than 10 % of their completion window left (sweep leader)."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if g.shown.Load() {
			o.ObserveInt64(live, g.shownLive.Load())
			o.ObserveInt64(near, g.shownNr.Load())
		}
		return nil
	}, live, near)
	return err
}

// seen counts a live batch the sweep read.
func (g *batchGauges) seen(b lifecycle.Batch, now time.Time) {
	if b.Status.Terminal() {
		return
	}
	g.live.Add(1)
	window := b.ExpiresAt.Sub(b.CreatedAt)
	if b.ExpiresAt.IsZero() || window <= 0 || !b.CancellingAt.IsZero() || b.Counts.Terminal() >= b.Counts.Total && b.Sealed {
		return
	}
	if left := b.ExpiresAt.Sub(now); left < time.Duration(float64(window)*nearDeadlineFraction) {
		g.near.Add(1)
	}
}

// passDone shows what the full pass counted and starts the next count.
func (g *batchGauges) passDone() {
	g.shownLive.Store(g.live.Swap(0))
	g.shownNr.Store(g.near.Swap(0))
	g.shown.Store(true)
}

// notLeader stops reporting: another worker sweeps.
func (g *batchGauges) notLeader() {
	g.shown.Store(false)
	g.live.Store(0)
	g.near.Store(0)
}
