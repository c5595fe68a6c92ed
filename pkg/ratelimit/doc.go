// Package ratelimit spends an upstream's rate-limit budget across the whole
// fleet instead of discovering it through 429s.
//
// A budget belongs to a Key: the route's budget name (or a hash of its API
// key, never the key itself) and the model. Each budget has up to four
// per-minute limits (Dims): requests, tokens (input and output together, as
// OpenAI counts them), input tokens and output tokens (as Anthropic counts
// them). Limits come from configuration (Config.Budgets) and from the
// providers' response headers (ParseHeaders); a 429 or 503 carrying
// retry-after / retry-after-ms holds the whole key × model until then.
//
// Before a call, Limiter.Acquire reserves the call's estimated cost
// (Estimate) through a Backend — the Redis store in production, one script
// call per admission — and waits, without any upstream connection, until
// the reservation is due; a call whose reservation would come after its
// cutoff fails with ErrDeadline. After the call, Ticket.Done corrects the
// reservation with the response's usage and feeds the headers back. When
// the Backend is unreachable, each worker falls back to a local bucket of
// Config.FallbackShare of the last known limits: slower, never unlimited.
//
// Upstreams that send no limit headers (a self-hosted vLLM or TGI) get an
// adaptive concurrency limit per key × model (Adaptive): additive increase
// while latency stays near its floor, multiplicative decrease on 429, 503
// or latency rising past LatencyTolerance × the floor, bounded by the
// worker's per-pod limit.
//
// A key with no configured budget, no header seen and adaptive concurrency
// off costs nothing: Acquire makes no Backend call.
//
// The package is standard library and pkg/lifecycle only, so the engine
// (pkg/worker) and the store (pkg/state) can both speak it.
package ratelimit
