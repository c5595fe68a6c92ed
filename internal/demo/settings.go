package demo

import (
	"time"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
)

// completionWindow is the demo batch's window (the OpenAI default).
const completionWindow = "24h"

// mockDescription says what mockOptions configure, for the output.
const mockDescription = "20-120 ms latency; 10% 429 with Retry-After 1s, 10% 500, 5% connection resets"

// mockOptions: a small realistic latency and a modest failure mix, so the
// demo shows retries — 429s re-queued after their Retry-After, 500s
// re-queued with backoff, resets retried in-process by pkg/httpclient.
func mockOptions() mockupstream.Options {
	return mockupstream.Options{
		Seed: 42,
		Script: mockupstream.Script{
			Latency: &mockupstream.Latency{Min: 20 * time.Millisecond, Max: 120 * time.Millisecond},
			Failures: &mockupstream.FailureMix{
				RateLimited: 0.10, RetryAfter: time.Second,
				ServerError: 0.10,
				Reset:       0.05,
			},
		},
	}
}

// demoSettings are the worker settings of the demo: the production
// defaults with fast retries and short timers, so a run takes seconds, and
// quick model discovery and short pulls, so the first requests are picked
// up at once and the worker stops quickly. Going through config.Settings
// keeps the derived values (MaxDeliver from the retry budget, the
// heartbeat from AckWait and the lease TTL) the ones cmd/worker would use.
func demoSettings(natsURL, redisURL, prefix string) config.Settings {
	s := config.Default()
	s.NATSURL = natsURL
	s.RedisURL = redisURL
	s.Prefix = prefix
	s.LogLevel = "warn"
	s.Streams.AckWait = 10 * time.Second
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	// JetStream reserves each stream's byte limit when it creates the
	// stream; the embedded server's store is natsMaxStore, so the demo's
	// streams take a small share of it each.
	s.Streams.RequestsMaxBytes = natsMaxStore / 8
	s.Streams.ResultsMaxBytes = natsMaxStore / 8
	s.Streams.AdvisoriesMaxBytes = natsMaxStore / 64
	s.Streams.BodiesMaxBytes = natsMaxStore / 8
	s.Lease.LeaseTTL = 10 * time.Second
	s.Lease.Retention = time.Hour
	s.Worker.Retry.Backoff = 100 * time.Millisecond
	s.Worker.Retry.MaxBackoff = time.Second
	s.Upstream.TransportBackoff = 20 * time.Millisecond
	// Per worker: the two workers hold 16 calls in flight between them,
	// and neither can take the 24 requests of the example alone.
	s.Worker.Concurrency.Default = 8
	s.Worker.ShutdownGrace = 2 * time.Second
	return s
}
