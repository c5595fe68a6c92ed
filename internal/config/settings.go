package config

import (
	"time"

	"github.com/salvo-run/salvo/internal/natsconn"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

// Settings defaults of the process-level keys. Every other key's default is
// its package's …Default constant.
const (
	NATSURLDefault  = "nats://127.0.0.1:4222"
	RedisURLDefault = "redis://127.0.0.1:6379"
	PrefixDefault   = lifecycle.PrefixDefault
	HTTPAddrDefault = "127.0.0.1:8081"
	LogLevelDefault = "info"
)

// noRetryLimitDeliveries bounds deliveries when retries are bounded only by
// the deadline: a week-long window at the 60 s backoff cap is ~10,000.
const noRetryLimitDeliveries = 100_000

// deliverySlack covers deliveries that are neither attempts nor reclaims:
// naks while another worker holds a lease or a retry is not yet due.
const deliverySlack = 50

// Settings is a worker process's whole configuration. The yaml tags are the
// keys of the config file (see deployments/worker.example.yaml); each key
// has an environment variable named by the SALVO_ rule (EnvName). The
// sections decode straight into the packages' own configs: a zero field
// takes that package's default, and the fields without a yaml tag (queue
// discovery interval, engine op timeout, …) are for code, not for users.
type Settings struct {
	// NATSURL is the NATS server (JetStream on) or a comma-separated list
	// of servers of one cluster.
	NATSURL string `yaml:"nats_url"`
	// NATS authenticates (creds, nkey, user and password, or token) and
	// secures (tls) the connection to NATSURL.
	NATS natsconn.Config `yaml:"nats"`
	// RedisURL is the Redis server: redis://[user:password@]host:port/db,
	// or rediss:// for TLS.
	RedisURL string `yaml:"redis_url"`
	// RedisAddrs, when set, selects a Sentinel (with RedisMaster) or Cluster
	// client instead of RedisURL.
	RedisAddrs  []string `yaml:"redis_addrs"`
	RedisMaster string   `yaml:"redis_master"`
	// Redis authenticates and secures the connections to Redis, of every
	// topology.
	Redis RedisConn `yaml:"redis"`
	// Prefix namespaces subjects, streams and Redis keys: 1 to 32 ASCII
	// letters, digits or '-'. The queue and the store both take it.
	Prefix string `yaml:"prefix"`
	// HTTPAddr is the listen address of /healthz, /readyz, /statusz,
	// /limits and /metrics.
	HTTPAddr string `yaml:"http_addr"`
	// LogLevel is the least level logged: debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// PProf serves Go's profiles under /debug/pprof/ on http_addr, for
	// profiling a worker under load; off by default (the profiles show
	// what the process is doing to anyone who reaches the listener).
	PProf bool `yaml:"pprof"`

	// Streams tune the JetStream streams and consumers. MaxDeliver 0 is
	// derived from the retry budget (see QueueConfig).
	Streams queue.Config `yaml:"streams"`
	// Lease tunes the Redis leases and record retention.
	Lease state.Config `yaml:"lease"`
	// Upstream routes models to upstream APIs; its Retry is set from
	// Worker.Retry.
	Upstream httpclient.Config `yaml:"upstream"`
	// Worker holds the engine keys, which sit at the top level of the file:
	// retry, concurrency, heartbeat_interval (0: derived, see
	// WorkerConfig), shutdown_grace.
	Worker worker.Config `yaml:",inline"`
}

// Default returns the built-in defaults.
func Default() Settings {
	return Settings{
		NATSURL:  NATSURLDefault,
		RedisURL: RedisURLDefault,
		Prefix:   PrefixDefault,
		HTTPAddr: HTTPAddrDefault,
		LogLevel: LogLevelDefault,
		// Explicit, so that a file's "default: 0" is an error rather than
		// the default.
		Worker: worker.Config{Concurrency: worker.Concurrency{Default: worker.ConcurrencyDefault}},
	}
}

// NATSConfig is the complete NATS connection config.
func (s Settings) NATSConfig() natsconn.Config {
	c := s.NATS
	c.URL = s.NATSURL
	return c
}

// RetryPolicy is the complete retry policy.
func (s Settings) RetryPolicy() lifecycle.RetryPolicy { return s.Worker.Retry.WithDefaults() }

// QueueConfig is the complete JetStream config. MaxDeliver, unless set, is
// derived from the retry budget: JetStream counts every delayed nak as a
// delivery, so a bound below the retries would end a request that is still
// allowed to retry.
func (s Settings) QueueConfig() queue.Config {
	c := s.Streams
	c.Prefix = s.Prefix
	c.MaxDeliver = s.maxDeliver()
	return c.WithDefaults()
}

// StateConfig is the complete Redis store config.
func (s Settings) StateConfig() state.Config {
	c := s.Lease
	c.Prefix = s.Prefix
	return c.WithDefaults()
}

// WorkerConfig is the complete engine config. HeartbeatInterval, unless
// set, is a third of the shorter of streams.ack_wait and lease.ttl.
func (s Settings) WorkerConfig() worker.Config {
	c := s.Worker
	c.HeartbeatInterval = s.heartbeat()
	return c.WithDefaults()
}

// heartbeat is the configured interval, or a third of the keep-alive budget.
func (s Settings) heartbeat() time.Duration {
	if s.Worker.HeartbeatInterval > 0 {
		return s.Worker.HeartbeatInterval
	}
	return s.keepAliveBudget() / 3
}

// keepAliveBudget is the shorter of AckWait and the lease TTL: a delivery
// must be refreshed well inside it.
func (s Settings) keepAliveBudget() time.Duration {
	return min(s.Streams.WithDefaults().AckWait, s.StateConfig().LeaseTTL)
}

// maxDeliver is streams.max_deliver, or retries + first attempt + reclaims
// + slack.
func (s Settings) maxDeliver() int {
	if s.Streams.MaxDeliver != 0 {
		return s.Streams.MaxDeliver
	}
	p := s.RetryPolicy()
	if p.MaxRetries == lifecycle.NoRetryLimit {
		return noRetryLimitDeliveries
	}
	return p.MaxRetries + 1 + s.StateConfig().MaxReclaims + deliverySlack
}
