// Package queue is salvo's NATS JetStream transport: stream provisioning,
// request publishing, per-model fetch loops, the delivery handle the worker
// acks, naks and terms, max-deliveries handling, results, control events
// and batch events. NATS types stay inside this package. It implements the
// client-free contract of pkg/transport (Delivery, Consumer, ConsumeOptions,
// Slots, Poison), whose names it keeps as aliases.
//
// # Assets (prefix p, default "salvo"; P is p upper-cased)
//
//	P_REQUESTS    work queue   p.req.<model>.<batch>      one request per message, Nats-Msg-Id = <batch>.<id> (MsgID)
//	P_RESULTS     limits       p.res.<batch>              one result per request, Nats-Msg-Id = <batch>.<id> (MsgID)
//	                           p.evt.batch.<batch>        batch lifecycle events (same stream, so one replay sees both)
//	P_ADVISORIES  work queue   $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.P_REQUESTS.>
//	P_BODIES      object store result bodies over the max payload (Response.BodyRef)
//	core NATS                  p.ctl.cancel.<batch>[.<request>], p.ctl.supersede.<request>
//
// <model> is lifecycle.EncodeToken(model), <batch> lifecycle.BatchToken(id)
// ("_" for batchless requests), <request> lifecycle.EncodeToken(id).
//
// # Consumption
//
// Each model has one durable pull consumer "model-<token>" (filter
// p.req.<token>.>) shared by every worker. A worker runs one fetch loop per
// model it has seen queued messages for; a loop pulls only as many messages
// as the model's Slots has free, reserving a slot per message before the
// pull, so no message waits in a client buffer while its AckWait runs and a
// saturated model never blocks another. Fetch errors (deleted consumer,
// missed idle heartbeats, server restart) recreate the consumer with
// exponential back-off (pull_loop.go, shared with the advisory loop);
// Consumer.Healthy reports loops that stopped polling.
//
// A server shutdown can cut a work-queue ack between the consumer and the
// stream: the consumer records the ack, the stream never deletes the
// message, and a single server does not reconcile work-queue streams on
// restart. Every Config.OrphanSweepInterval the consumer deletes such
// orphans (stored messages at or below their consumer's ack floor, seen
// twice at least 5 s apart), leaving poison messages whose max-deliveries
// advisory is still pending to the advisory loop.
//
// JetStream facts designed against: a delayed nak stays in the consumer's
// pending set (counts against MaxAckPending and MaxDeliver); an ack after
// AckWait is still accepted (fence with NumDelivered/StreamSeq); a message
// past MaxDeliver stays in a work-queue stream (the ADVISORIES stream and
// OnPoison remove it); dedup holds only inside the duplicate window.
//
// # Poison messages
//
// The queue is transport: it reports each request message it gives up on,
// a malformed one or one past MaxDeliver, to ConsumeOptions.OnPoison as a
// Poison, and removes the message once the hook returns nil. The caller
// decides what that means for the request. Every subject is built, parsed
// and checked in subjects.go.
//
// # Server versions
//
// Everything here works on nats-server 2.9.0 and later (the jetstream
// client's named-consumer API is the newest requirement); Provision refuses
// older servers with ErrServerTooOld. No 2.10+ feature (multi-filter
// consumers, priority groups, per-message TTL, schedules) is used.
package queue
