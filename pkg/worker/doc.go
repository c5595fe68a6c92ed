// Package worker is salvo's request engine: the part of the worker process
// that turns delivered request messages into exactly one terminal state and
// exactly one result each.
//
// For every delivery the worker claims the request in Redis straight into
// processing (one script, fenced by a fresh token), calls the upstream, and
// then makes exactly one of three moves — complete, fail for good, or
// schedule a retry (pending with not_before, nak with that delay) — before
// publishing the result and acking. A worker that lost its lease writes
// nothing and leaves the message alone: the new owner finishes it.
//
// The worker depends on small interfaces it declares itself (Store, Queue,
// Upstream), satisfied by pkg/state, pkg/queue and pkg/httpclient. They are
// written in pkg/lifecycle and pkg/transport terms, so the engine links no
// Redis or NATS client and imports neither pkg/state nor pkg/queue;
// internal/config wires the store and the queue in, and cmd/worker only
// starts it.
package worker
