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
// Upstream), satisfied by pkg/state, pkg/queue and pkg/httpclient. cmd/worker
// only wires them together.
package worker
