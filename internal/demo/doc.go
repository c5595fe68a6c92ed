// Package demo is `make demo`: salvo's main job in one process, ending by
// itself.
//
// Run starts an in-process nats-server (the real nats-server/v2 package,
// JetStream on a temporary store) unless NATSURL names one, whose streams
// under the run's prefix it deletes at the end; picks a Redis (REDIS_URL
// with a key prefix of its own; else a redis-server found on PATH,
// spawned on a free loopback port and stopped at the end; else an
// in-process miniredis, announced as a DEV STAND-IN); checks that
// pkg/state's Lua scripts behave on it; starts the mock OpenAI-compatible
// upstream with latency and a failure mix (429 with Retry-After, 500,
// connection resets), or routes to UpstreamURL with APIKey (never
// printed); starts two workers (config.Start, as cmd/worker does: pkg/worker
// over pkg/queue, pkg/state and pkg/httpclient), each with its own metrics;
// and then acts as the producer, with the code behind cmd/producer
// (internal/producer): it submits the input batch as `producer submit
// --skip-invalid` does (every line validated, the bad ones reported, the
// batch created through the batch API, the good lines published), follows
// it with the Watcher of `producer watch` until it is final (which it turns
// once every result is published), writes the output and error files as
// `producer results` does and prints a summary: wall time, req/s, and the
// requests each worker ended, read from its own salvo_requests_total.
//
// It is wiring of the real packages, not a second implementation.
package demo
