package config

import (
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

// Validate checks every setting except the API key variables (Resolve reads
// those) and returns the first problem as an *Error naming the key.
func (s Settings) Validate() error {
	switch {
	case s.NATSURL == "":
		return keyError("nats_url", nil, "is required")
	case s.RedisURL == "" && len(s.RedisAddrs) == 0:
		return keyError("redis_url", nil, "is required (or redis_addrs)")
	}
	if err := lifecycle.CheckPrefix(s.Prefix); err != nil {
		return keyError("prefix", err, "%s", err)
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return keyError("log_level", nil, "%q is not one of debug, info, warn, error", s.LogLevel)
	}
	if err := natsSettingError(s.NATSConfig().Validate()); err != nil {
		return err
	}
	if err := s.validateRedis(); err != nil {
		return err
	}
	q := s.QueueConfig()
	if err := q.Validate(); err != nil {
		return inSection("streams", err)
	}
	if err := s.StateConfig().Validate(); err != nil {
		return inSection("lease", err)
	}
	if sc, op := s.StateConfig(), s.WorkerConfig().OpTimeout; sc.WaitReplicas > 0 && sc.WaitTimeout >= op {
		return keyError("lease.wait_timeout", nil,
			"%s must be below %s, the worker's bound on each Redis call (a write waits for its replicas within it)", sc.WaitTimeout, op)
	}
	// Before WithDefaults, which would take a 0 for "unset".
	if err := s.Worker.Concurrency.Validate(); err != nil {
		return inSection("", err)
	}
	if err := s.WorkerConfig().Validate(); err != nil {
		return inSection("", err)
	}
	if budget := s.keepAliveBudget(); s.heartbeat() > budget/2 {
		return keyError("heartbeat_interval", nil,
			"%s must be at most half of the shorter of streams.ack_wait and lease.ttl (%s)", s.heartbeat(), budget)
	}
	if p := s.RetryPolicy(); s.Streams.MaxDeliver != 0 && p.MaxRetries != lifecycle.NoRetryLimit {
		if need := p.MaxRetries + 1 + s.StateConfig().MaxReclaims; q.MaxDeliver <= need {
			return keyError("streams.max_deliver", nil,
				"%d must exceed retry.max_retries + 1 + lease.max_reclaims = %d (every retry is a delivery)", q.MaxDeliver, need)
		}
	}
	if err := s.upstream().Validate(); err != nil {
		return inSection("upstream", err)
	}
	return nil
}

// upstream is the upstream config with defaults, keys not yet read.
func (s Settings) upstream() httpclient.Config {
	c := s.Upstream
	c.Retry = s.RetryPolicy()
	return c.WithDefaults()
}

// HTTPConfig is the complete upstream config, each route's API key read
// from the variable its api_key_env names (through getenv). A named
// variable that is empty or unset is an *Error naming the route's
// api_key_env.
func (s Settings) HTTPConfig(getenv func(string) string) (httpclient.Config, error) {
	c := s.upstream()
	if err := c.Validate(); err != nil {
		return c, inSection("upstream", err)
	}
	c, err := c.ResolveKeys(func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	})
	return c, inSection("upstream", err)
}

// Resolved is what a process runs with: each package's complete config.
type Resolved struct {
	Queue  queue.Config
	State  state.Config
	HTTP   httpclient.Config
	Worker worker.Config
}

// Resolve validates s, reads the API keys through getenv and returns the
// packages' configs. Nothing is connected or created: a process resolves
// before it touches NATS or Redis.
func (s Settings) Resolve(getenv func(string) string) (Resolved, error) {
	if err := s.Validate(); err != nil {
		return Resolved{}, err
	}
	hc, err := s.HTTPConfig(getenv)
	if err != nil {
		return Resolved{}, err
	}
	return Resolved{Queue: s.QueueConfig(), State: s.StateConfig(), HTTP: hc, Worker: s.WorkerConfig()}, nil
}
