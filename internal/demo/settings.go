package demo

import (
	"time"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/worker"
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
// defaults with fast retries and short timers, so a run takes seconds.
// Going through worker.Settings keeps the derived values (MaxDeliver from
// the retry budget, the heartbeat from AckWait and the lease TTL) the ones
// cmd/worker would use.
func demoSettings(natsURL, redisURL, prefix string) worker.Settings {
	s := worker.DefaultSettings()
	s.NATSURL = natsURL
	s.RedisURL = redisURL
	s.Prefix = prefix
	s.LogLevel = "warn"
	s.Streams.AckWait = 10 * time.Second
	s.Lease.TTL = 10 * time.Second
	s.Lease.Retention = time.Hour
	s.Retry.Backoff = 100 * time.Millisecond
	s.Retry.MaxBackoff = time.Second
	s.Upstream.TransportBackoff = 20 * time.Millisecond
	s.Concurrency.Default = 16
	s.ShutdownGrace = 2 * time.Second
	return s
}

// demoQueueConfig is the settings' queue config with quick model discovery
// and short pulls, so the first requests are picked up at once and the
// worker stops quickly.
func demoQueueConfig(s worker.Settings) queue.Config {
	c := s.QueueConfig()
	c.DiscoveryInterval = 100 * time.Millisecond
	c.FetchExpiry = time.Second
	return c
}
