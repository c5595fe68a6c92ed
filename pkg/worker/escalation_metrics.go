package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// register serves the escalation counts (the same atomics /statusz shows)
// as salvo_escalations_total{outcome="routed"|"started"|"won"|"lost"} and
// salvo_escalation_wasted_calls_total, read at collection: escalation
// records nothing more than it did before.
func (e *escalationStats) register(m metric.Meter) error {
	esc, err := m.Int64ObservableCounter("salvo_escalations",
		metric.WithDescription("Escalations on this worker: requests routed to their escalation model at claim, racing copies started, won and lost (outcome)."))
	if err != nil {
		return err
	}
	wasted, err := m.Int64ObservableCounter("salvo_escalation_wasted_calls",
		metric.WithDescription("Upstream calls whose answer was dropped because their request was superseded."))
	if err != nil {
		return err
	}
	outcome := func(v string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", v)))
	}
	routed, started, won, lost := outcome("routed"), outcome("started"), outcome("won"), outcome("lost")
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(esc, e.routed.Load(), routed)
		o.ObserveInt64(esc, e.started.Load(), started)
		o.ObserveInt64(esc, e.won.Load(), won)
		o.ObserveInt64(esc, e.lost.Load(), lost)
		o.ObserveInt64(wasted, e.wasted.Load())
		return nil
	}, esc, wasted)
	return err
}
