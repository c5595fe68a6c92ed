package queue_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
)

func TestProvisionIsIdempotentAndUpdates(t *testing.T) {
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

	// A changed max age is updated in place.
	cfg := b.cfg
	cfg.RequestsMaxAge = 3 * time.Hour
	require.NoError(t, newClient(t, b.nc, cfg).Provision(ctx(t)))
	s, err = b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	require.Equal(t, 3*time.Hour, s.CachedInfo().Config.MaxAge)

	for _, name := range []string{"SALVO_RESULTS", "SALVO_ADVISORIES", "OBJ_SALVO_BODIES"} {
		_, err := b.js.Stream(ctx(t), name)
		require.NoError(t, err, name)
	}
	r, err := b.js.Stream(ctx(t), "SALVO_RESULTS")
	require.NoError(t, err)
	require.Equal(t, jetstream.LimitsPolicy, r.CachedInfo().Config.Retention)
	require.ElementsMatch(t, []string{"salvo.res.>", "salvo.evt.>"}, r.CachedInfo().Config.Subjects)
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
