package queue_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

func TestProvisionIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s, err := b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	before := s.CachedInfo()
	require.Equal(t, jetstream.WorkQueuePolicy, before.Config.Retention)
	require.Equal(t, []string{"salvo.req.>"}, before.Config.Subjects)

	// A second run changes nothing.
	require.NoError(t, b.c.Provision(ctx(t)))
	s, err = b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	require.Equal(t, before.Config, s.CachedInfo().Config)

	for _, name := range []string{"SALVO_RESULTS", "SALVO_ADVISORIES", "OBJ_SALVO_BODIES"} {
		_, err := b.js.Stream(ctx(t), name)
		require.NoError(t, err, name)
	}
	r, err := b.js.Stream(ctx(t), "SALVO_RESULTS")
	require.NoError(t, err)
	require.Equal(t, jetstream.LimitsPolicy, r.CachedInfo().Config.Retention)
	require.ElementsMatch(t, []string{"salvo.res.>", "salvo.evt.>"}, r.CachedInfo().Config.Subjects)
}

// One pod with other stream settings must not rewrite everyone's streams:
// Provision refuses, naming each field with both values; ApplySettings is
// the deliberate change.
func TestProvisionRefusesOtherSettingsAndApplySettingsChangesThem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	maxAge := func(name string) time.Duration {
		s, err := b.js.Stream(ctx(t), name)
		require.NoError(t, err)
		return s.CachedInfo().Config.MaxAge
	}
	cfg := b.cfg
	cfg.ResultsMaxAge = time.Hour
	cfg.DuplicateWindow = time.Minute
	other := newClient(t, b.nc, cfg)

	err := other.Provision(ctx(t))
	require.ErrorIs(t, err, queue.ErrSettingsDiffer)
	var diff *queue.DiffError
	require.ErrorAs(t, err, &diff)
	require.Contains(t, diff.Diffs, queue.Diff{
		Object: "stream SALVO_RESULTS", Field: "max_age", Key: "results_max_age", Server: "168h0m0s", Worker: "1h0m0s",
	})
	require.Contains(t, diff.Diffs, queue.Diff{
		Object: "object store SALVO_BODIES", Field: "ttl", Key: "results_max_age", Server: "168h0m0s", Worker: "1h0m0s",
	})
	require.Contains(t, diff.Diffs, queue.Diff{
		Object: "stream SALVO_REQUESTS", Field: "duplicate_window", Key: "duplicate_window", Server: "2m0s", Worker: "1m0s",
	})
	require.ErrorContains(t, err, "stream SALVO_RESULTS: max_age is 168h0m0s on the server, this worker has 1h0m0s (results_max_age)")
	require.Equal(t, queue.ResultsMaxAgeDefault, maxAge("SALVO_RESULTS"), "refused, yet changed")

	changes, err := other.ApplySettings(ctx(t))
	require.NoError(t, err)
	require.Contains(t, changes, queue.Diff{
		Object: "stream SALVO_RESULTS", Field: "max_age", Key: "results_max_age", Server: "168h0m0s", Worker: "1h0m0s",
	})
	require.Equal(t, time.Hour, maxAge("SALVO_RESULTS"))
	require.Equal(t, time.Hour, maxAge("OBJ_SALVO_BODIES"))
	require.NoError(t, other.Provision(ctx(t)), "the server now has this worker's settings")
	require.ErrorIs(t, b.c.Provision(ctx(t)), queue.ErrSettingsDiffer, "and the first worker is the odd one out")
	changes, err = other.ApplySettings(ctx(t))
	require.NoError(t, err)
	require.Empty(t, changes, "nothing left to change")
}

// Model consumers are shared: a worker with other consumer settings uses
// the existing consumer as it is (its start-time Provision is what
// refuses), and ApplySettings / SetMaxDeliver change them deliberately.
func TestModelConsumerSettingsAreNotRewrittenByAFetchLoop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name, err := b.c.ModelConsumerName("m")
	require.NoError(t, err)
	_, err = b.c.EnsureModelConsumer(ctx(t), "m")
	require.NoError(t, err)
	info := func() jetstream.ConsumerConfig {
		c, err := b.js.Consumer(ctx(t), "SALVO_REQUESTS", name)
		require.NoError(t, err)
		return c.CachedInfo().Config
	}
	require.Equal(t, time.Second, info().AckWait)
	require.Equal(t, queue.MaxDeliverDefault, info().MaxDeliver)

	cfg := b.cfg
	cfg.AckWait = 3 * time.Second
	cfg.MaxAckPending = 77
	other := newClient(t, b.nc, cfg)
	err = other.Provision(ctx(t))
	require.ErrorIs(t, err, queue.ErrSettingsDiffer)
	require.ErrorContains(t, err, "consumer "+name+" of SALVO_REQUESTS: ack_wait is 1s on the server, this worker has 3s (ack_wait)")
	require.ErrorContains(t, err, "max_ack_pending is 20000 on the server, this worker has 77 (max_ack_pending)")

	// The other worker's fetch loop takes the consumer as it is.
	var handled atomic.Int32
	consume(t, other, queue.ConsumeOptions{
		Slots:   newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) { handled.Add(1); _ = d.Ack(ctx) },
	})
	publishN(t, b.c, "r", "m", "b1", 3)
	waitFor(t, eventually, "three deliveries", func() bool { return handled.Load() == 3 })
	require.Equal(t, time.Second, info().AckWait, "a fetch loop rewrote the shared consumer")
	require.Equal(t, 20000, info().MaxAckPending)

	// A new retry budget is a deliberate change of every model consumer.
	require.NoError(t, b.c.SetMaxDeliver(ctx(t), 7))
	require.Equal(t, 7, info().MaxDeliver)
	require.Equal(t, 7, b.c.Config().MaxDeliver)
	require.ErrorIs(t, b.c.SetMaxDeliver(ctx(t), 1), queue.ErrInvalidConfig)

	changes, err := other.ApplySettings(ctx(t))
	require.NoError(t, err)
	require.Contains(t, changes, queue.Diff{
		Object: "consumer " + name + " of SALVO_REQUESTS", Field: "ack_wait", Key: "ack_wait", Server: "1s", Worker: "3s",
	})
	require.Equal(t, 3*time.Second, info().AckWait)
	require.Equal(t, 77, info().MaxAckPending)
	require.Equal(t, queue.MaxDeliverDefault, info().MaxDeliver)
}

func TestProvisionRejectsIncompatibleStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// An older deployment left a limits-retention requests stream behind.
	_, err := b.js.CreateStream(ctx(t), jetstream.StreamConfig{
		Name: "OLD_REQUESTS", Subjects: []string{"old.req.>"}, Retention: jetstream.LimitsPolicy,
	})
	require.NoError(t, err)
	cfg := b.cfg
	cfg.Prefix = "old"
	err = newClient(t, b.nc, cfg).Provision(ctx(t))
	require.ErrorIs(t, err, queue.ErrIncompatible)
	var inc *queue.IncompatibleError
	require.True(t, errors.As(err, &inc))
	require.Equal(t, "OLD_REQUESTS", inc.Stream)
	require.Equal(t, "retention", inc.Field)
	require.Contains(t, err.Error(), "retention")
	require.Contains(t, err.Error(), "cannot be changed")
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	cases := map[string]func(*queue.Config){
		"prefix":                   func(c *queue.Config) { c.Prefix = "a.b" },
		"replicas":                 func(c *queue.Config) { c.Replicas = 9 },
		"ack_wait":                 func(c *queue.Config) { c.AckWait = time.Millisecond },
		"max_deliver":              func(c *queue.Config) { c.MaxDeliver = 1 },
		"fetch_expiry":             func(c *queue.Config) { c.FetchExpiry = time.Millisecond },
		"publish_window":           func(c *queue.Config) { c.PublishWindow = -1 },
		"orphan_sweep_interval":    func(c *queue.Config) { c.OrphanSweepInterval = time.Millisecond },
		"model_inactive_threshold": func(c *queue.Config) { c.ModelInactiveThreshold = time.Second },
		"model_idle_timeout":       func(c *queue.Config) { c.ModelIdleTimeout = time.Second },
		"requests_max_msgs":        func(c *queue.Config) { c.RequestsMaxMsgs = -1 },
		"results_max_bytes":        func(c *queue.Config) { c.ResultsMaxBytes = -5 },
		"bodies_max_bytes":         func(c *queue.Config) { c.BodiesMaxBytes = -1 },
	}
	for field, mod := range cases {
		t.Run(field, func(t *testing.T) {
			cfg := queue.Config{}.WithDefaults()
			mod(&cfg)
			err := cfg.Validate()
			require.ErrorIs(t, err, queue.ErrInvalidConfig)
			require.Contains(t, err.Error(), field)
		})
	}
	require.NoError(t, queue.Config{}.WithDefaults().Validate())
}
