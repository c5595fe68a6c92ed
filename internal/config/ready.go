package config

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// readyTimeout bounds the Redis ping of a readiness check.
const readyTimeout = 2 * time.Second

// Readiness is what a readiness check found: one entry per dependency,
// nil when it is fine.
type Readiness struct {
	NATS, Redis, Consumer error
}

// Ready reports whether every dependency is fine.
func (r Readiness) Ready() bool { return r.NATS == nil && r.Redis == nil && r.Consumer == nil }

// Problems lists what is wrong, one line per dependency ("redis: …").
func (r Readiness) Problems() []string {
	var out []string
	for _, d := range []struct {
		name string
		err  error
	}{{"nats", r.NATS}, {"redis", r.Redis}, {"consumer", r.Consumer}} {
		if d.err != nil {
			out = append(out, d.name+": "+d.err.Error())
		}
	}
	return out
}

// errNATSDown is the readiness error of a connection that is not up.
type errNATSDown string

func (e errNATSDown) Error() string { return string(e) }

// Readiness checks the process's dependencies now: the NATS connection,
// a Redis ping (bounded by readyTimeout) and the worker's fetch loops
// (a loop that stopped fetching or polling is stale: queue.Consumer.Healthy).
func (p *Process) Readiness(ctx context.Context) Readiness {
	var r Readiness
	if !p.NATS.IsConnected() {
		r.NATS = errNATSDown(p.NATS.Status().String())
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	r.Redis = p.Redis.Ping(ctx).Err()
	r.Consumer = p.Worker.Healthy()
	return r
}

// registerReadiness serves the readiness checks as salvo_dependency_up
// {dependency="nats"|"redis"|"consumer"} (1 up, 0 down), checked at each
// collection, so alerts see an outage without probing /readyz.
func (p *Process) registerReadiness(mp metric.MeterProvider) error {
	if mp == nil {
		return nil
	}
	m := mp.Meter("github.com/salvo-run/salvo/internal/config")
	up, err := m.Int64ObservableGauge("salvo_dependency_up",
		metric.WithDescription("1 when the dependency answers (nats connected, redis ping, the consumer's fetch loops fresh), else 0."))
	if err != nil {
		return err
	}
	reg, err := m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		r := p.Readiness(ctx)
		for _, d := range []struct {
			name string
			err  error
		}{{"nats", r.NATS}, {"redis", r.Redis}, {"consumer", r.Consumer}} {
			v := int64(1)
			if d.err != nil {
				v = 0
			}
			o.ObserveInt64(up, v, metric.WithAttributes(attribute.String("dependency", d.name)))
		}
		return nil
	}, up)
	if err != nil {
		return err
	}
	// Unregistered first at Stop (closers run in reverse), before the
	// clients it reads are closed.
	p.closers = append(p.closers, func() { _ = reg.Unregister() })
	return nil
}
