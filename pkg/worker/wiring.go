package worker

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
)

// noRetryLimitDeliveries bounds deliveries when retries are bounded only by
// the deadline: a week-long window at the 60 s backoff cap is ~10,000.
const noRetryLimitDeliveries = 100_000

// deliverySlack covers deliveries that are neither attempts nor reclaims:
// naks while another worker holds a lease or a retry is not yet due.
const deliverySlack = 50

// EngineConfig is the engine part of the settings.
func (s Settings) EngineConfig(id string) Config {
	return Config{
		ID:                id,
		Retry:             s.Retry.Policy(),
		Concurrency:       s.Concurrency,
		HeartbeatInterval: s.heartbeat(),
		ShutdownGrace:     s.ShutdownGrace,
	}
}

// heartbeat is the configured interval, or a third of the shorter of
// AckWait and the lease TTL.
func (s Settings) heartbeat() time.Duration {
	if s.HeartbeatInterval > 0 {
		return s.HeartbeatInterval
	}
	return s.keepAliveBudget() / 3
}

// keepAliveBudget is the shorter of AckWait and the lease TTL: a delivery
// must be refreshed well inside it.
func (s Settings) keepAliveBudget() time.Duration {
	q := s.QueueConfig().WithDefaults()
	st := s.StateConfig().WithDefaults()
	return min(q.AckWait, st.LeaseTTL)
}

// maxDeliver is streams.max_deliver, or derived from the retry budget:
// JetStream counts every delayed nak as a delivery, so a bound below the
// retries would end a request that is still allowed to retry.
func (s Settings) maxDeliver() int {
	if s.Streams.MaxDeliver != 0 {
		return s.Streams.MaxDeliver
	}
	p := s.Retry.Policy()
	if p.MaxRetries == lifecycle.NoRetryLimit {
		return noRetryLimitDeliveries
	}
	return p.MaxRetries + 1 + s.StateConfig().WithDefaults().MaxReclaims + deliverySlack
}

// QueueConfig is the JetStream part of the settings.
func (s Settings) QueueConfig() queue.Config {
	c := queue.Config{
		Prefix:          s.Prefix,
		Replicas:        s.Streams.Replicas,
		RequestsMaxAge:  s.Streams.RequestsMaxAge,
		ResultsMaxAge:   s.Streams.ResultsMaxAge,
		DuplicateWindow: s.Streams.DuplicateWindow,
		AckWait:         s.Streams.AckWait,
		MaxDeliver:      s.maxDeliver(),
		MaxAckPending:   s.Streams.MaxAckPending,
	}
	if s.Streams.Storage == "memory" {
		c.Storage = jetstream.MemoryStorage
	}
	return c
}

// StateConfig is the Redis store part of the settings.
func (s Settings) StateConfig() state.Config {
	return state.Config{
		Prefix:      s.Prefix,
		LeaseTTL:    s.Lease.TTL,
		Retention:   s.Lease.Retention,
		MaxReclaims: s.Lease.MaxReclaims,
	}
}

// RedisClient builds the Redis client the settings describe: a single node
// from RedisURL, or Sentinel / Cluster from RedisAddrs.
func (s Settings) RedisClient() (redis.UniversalClient, error) {
	// ContextTimeoutEnabled: the worker bounds every call with a context
	// deadline (OpTimeout); without it go-redis waits for its own socket
	// timeouts instead.
	if len(s.RedisAddrs) > 0 {
		return redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: s.RedisAddrs, MasterName: s.RedisMaster, ContextTimeoutEnabled: true,
		}), nil
	}
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		// The parser's error quotes the URL, password included: say only
		// what is wrong.
		return nil, errors.New("redis_url: not a valid redis:// or rediss:// URL (value not shown: it may hold a password)")
	}
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

// HTTPConfig is the upstream part of the settings. API keys are read from
// the environment variables the routes name; a named variable that is empty
// is an error naming the route.
func (s Settings) HTTPConfig(getenv func(string) string) (httpclient.Config, error) {
	c := httpclient.Config{
		Routes: make(map[string]httpclient.Route, len(s.Upstream.Routes)),
		Timeouts: httpclient.Timeouts{
			Connect:     s.Upstream.ConnectTimeout,
			FirstByte:   s.Upstream.FirstByteTimeout,
			Idle:        s.Upstream.IdleTimeout,
			Body:        s.Upstream.BodyTimeout,
			UploadStall: s.Upstream.UploadStall,
		},
		TransportRetries: s.Upstream.TransportRetries,
		TransportBackoff: s.Upstream.TransportBackoff,
		MaxResponseBytes: s.Upstream.MaxResponseBytes,
		Retry:            s.Retry.Policy(),
	}
	models := make([]string, 0, len(s.Upstream.Routes))
	for m := range s.Upstream.Routes {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		r, err := route(s.Upstream.Routes[m], fmt.Sprintf("upstream.routes[%q]", m), getenv)
		if err != nil {
			return c, err
		}
		c.Routes[m] = r
	}
	if s.Upstream.Default != nil {
		r, err := route(*s.Upstream.Default, "upstream.default", getenv)
		if err != nil {
			return c, err
		}
		c.Default = &r
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

func route(rs RouteSettings, field string, getenv func(string) string) (httpclient.Route, error) {
	r := httpclient.Route{
		BaseURL:            rs.BaseURL,
		APIKeyEnv:          rs.APIKeyEnv,
		Headers:            rs.Headers,
		AllowRequestAPIKey: rs.AllowRequestAPIKey,
	}
	if rs.APIKeyEnv != "" {
		key := getenv(rs.APIKeyEnv)
		if key == "" {
			return r, fmt.Errorf("%s.api_key_env: environment variable %s is empty", field, rs.APIKeyEnv)
		}
		r.APIKey = httpclient.Secret(key)
	}
	return r, nil
}
