// Package api is salvo's batch API: a NATS micro service through which a
// client holding nothing but NATS credentials creates, seals, reads, lists
// and cancels batches, and reads and cancels single requests.
//
// Every worker process serves it (internal/config wires it next to the
// engine), registered as the micro service "salvo" in the default queue
// group, so any process answers and `nats micro ls/info/stats salvo`
// finds them all. Requests and replies are JSON; the subjects are
// <prefix>.api.<endpoint>:
//
//	batch.create    {"id"?, "completion_window"?, "endpoint"?, "metadata"?, "total"?} → batch
//	batch.seal      {"id", "total"}                                             → batch
//	batch.get       {"id"}                                                      → batch
//	batch.cancel    {"id"}                                                      → batch
//	batch.list      {"after"?, "limit"?, "status"?, "metadata"?}                → list of batches
//	request.get     {"id", "batch_id"?}                                         → request
//	request.cancel  {"id", "batch_id"?}                                         → request
//
// The batch and list objects are shaped like OpenAI's (BatchObject,
// BatchList: times in unix seconds, null until reached) with salvo's finer
// counts under "salvo"; docs/schema/api.schema.json describes every body
// and each endpoint's metadata points at its definitions. Micro endpoint
// names cannot hold dots, so batch.create is the endpoint batch_create on
// subject <prefix>.api.batch.create.
//
// # Errors
//
// A refused request gets a micro error reply: the headers
// Nats-Service-Error-Code and Nats-Service-Error carry the code and the
// message, the body is {"error":{"code":…,"message":…}} (ErrorReply). The
// codes are invalid_argument, not_found, conflict, unavailable and
// internal (see the Code constants); a message starts with the field it is
// about, spelled as the client wrote it ("metadata: 17 pairs, at most 16").
// Unknown fields and bodies over Config.MaxBody are invalid_argument.
// Every endpoint is safe to retry: create is idempotent by id (the same id
// with other contents is a conflict naming the field), cancels repeat
// harmlessly.
//
// # Cancel
//
// batch.cancel writes Redis first, then publishes the control event that
// aborts in-flight calls, replies, and then ends the batch's queued
// requests in the background (Engine.EndQueued). A failed control publish
// does not fail the cancel: Redis holds the truth and a worker finds the
// cancel at its next store write, so the event only saves latency. Stop
// cancels and waits for the background work; the sweep finishes what it
// leaves.
//
// The service depends on the Store, Events and Engine interfaces it
// declares, written in pkg/lifecycle terms, so it links no Redis client.
package api
