// Package transport is the contract between salvo's engine and its message
// transport, with no client in it: the delivery handle a handler finishes
// (Delivery), what Consume takes (ConsumeOptions, Handler, the per-model
// Slots) and returns (Consumer), and the messages the transport gives up on
// (Poison). pkg/queue implements it over NATS JetStream; pkg/worker depends
// on it, so the engine builds without a NATS client.
//
// Like pkg/lifecycle it imports only the standard library and lifecycle.
package transport
