// Package state is salvo's Redis store: request records, leases with fencing
// tokens, batch records with exact counters, and optional global per-model
// concurrency slots.
//
// Redis is the source of truth for what is done. Every lifecycle move is one
// Lua script (one round trip) that checks the request's state, lease owner
// and fencing token, applies the move and keeps the batch counters exact in
// the same script, so a zombie worker can never resurrect a finished request
// and the counters always equal a recount of the records.
//
// # Layout
//
// keys.go builds every key. All keys of one batch share the hash tag
// {<batch>} (prefix:{batch}:batch, prefix:{batch}:req:<id>,
// prefix:{batch}:leases), so every script touches one cluster slot. A
// batchless request gets a tag of its own ({~ <id>}); the batch and lease
// keys passed for it never exist, so it is processed without counters.
//
// # Lazy records
//
// A batch is created with its Total and pending = Total. A request's record
// is created by its first Claim (or by CancelRequest, Supersede or ForceFail). Until then
// the request is counted in pending. Requests naming a batch that has no
// record (never created, or expired by retention) and batchless requests are
// processed without batch counters and without the lease index.
//
// # Counters
//
// Every request is counted in exactly one of pending, in_progress, completed,
// failed, canceled, superseded, expired. A pending request of a cancelled
// batch is counted in canceled: CancelBatch moves the whole pending counter
// into canceled at once (canceled += pending, pending = 0) without touching
// records; a later Claim of such a request ends it canceled with no counter
// change, and a Retry or Release of an in-flight request of a cancelled
// batch ends it canceled instead of re-queueing it.
//
// A batch must be created (CreateBatch, with its Total) before any of its
// requests is published: the counters assume the requests published for a
// batch number exactly its Total. Requests beyond Total are refused without
// touching the counters: once pending is 0 every request of the batch is
// accounted for, so a request id with no record is not one of the batch's —
// Claim ends it failed with lifecycle.CodeMalformedMessage (JustEnded),
// ForceFail records its failure uncounted and CancelRequest reports
// ErrNotFound. Submission (the producer and the batch-create endpoint) is
// where the count is enforced first.
//
// # Leases
//
// A claim's lease is live until its expiry; another claim (the same owner
// included: a redelivered copy to the same worker must not run twice) is
// refused with *LeaseHeldError until then. A holder whose lease expired may
// still write until someone reclaims: only the fencing token decides. Each
// batch keeps a lease index (ZSET request id → lease expiry) of its
// in-flight requests, maintained by the scripts and read by ExpiredLeases,
// so a reaper can find dead leases of requests whose message is gone.
//
// # Terminals
//
// completed, failed, superseded and expired are hard: a later terminal write
// is dropped and reported with Transition.Applied == false (not an error).
// canceled is soft: a Complete or Fail by the holder whose owner and token
// still match replaces it and moves the counter (canceled−1,
// completed/failed+1) in the same script, but only while the canceled result
// has not been published (MarkPublished). Once it was, the late Complete or
// Fail is dropped (Applied false, State canceled, counters unchanged), so a
// request never gets two result messages. Nothing moves a terminal request
// back to claimed or processing. Supersede (a racing copy won) is the one
// move out of a hard terminal: a failed original becomes superseded, as
// pending, claimed and processing requests do; it bumps the fence, so the
// loser's holder writes nothing more.
//
// # Finalization
//
// When the terminal counters reach Total the batch finalizes, exactly once,
// inside the script that made the last move: status cancelled if the batch
// was cancelled (cancelled wins), else expired if the batch was marked
// expiring (the hook field "expiring", set by a later issue) or if at least
// one request ended expired and the batch is past its expires_at (OpenAI
// semantics), else completed if at least one request completed, else
// cancelled if every request was canceled one by one, else failed.
//
// # Expiry
//
// A claim at or after the request's own expires_at or its batch's
// expires_at ends the request expired (Ended.JustEnded) instead of taking
// it. That call alone returns the batch in
// Transition.Finalized or Ended.Finalized.
//
// # Batch status
//
// Final statuses and cancelling are stored; the others are derived on read:
// validating until the first claim, finalizing once at least 95 % of the
// requests are terminal, in_progress otherwise.
//
// # Retention
//
// Every key expires; nothing grows without bound. Terminal request records
// and finalized batches get PEXPIRE Config.Retention when they end. Until
// then a batch's keys (its hash from CreateBatch on, its lease index, the
// record of each held request) expire at the batch's expires_at plus
// Config.Retention, and the record of a batchless request (or of one whose
// batch has no record) at its own expires_at plus Config.Retention (without
// an expires_at: Retention from its last claim). So a request that never
// ends — its message purged, its worker gone — leaves nothing behind once
// its deadline plus retention has passed. Model slot holders expire with
// their last holder. Keys written before this rule get their TTL at their
// next claim or terminal move. Time is passed into every script from
// Config.Clock as unix milliseconds and every TTL is a PEXPIRE relative to
// it; scripts never read the server clock.
package state
