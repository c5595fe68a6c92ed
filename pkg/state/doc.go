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
// A batch is created sealed, with its Total and pending = Total, or open
// (Total 0): an open batch counts each request when it first sees it (total
// and seen + 1) until SealBatch fixes the total; it cannot finish before.
// A request's record is created by its first Claim (or by CancelRequest,
// Supersede or ForceFail); until then it is counted in pending. A Claim of
// a request naming a batch that has no record (not created yet, or gone by
// retention) writes nothing and fails with lifecycle.ErrNoBatch (the
// worker holds the message a while, then ends it batch_not_found);
// batchless requests run without batch counters and without the lease
// index.
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
// A sealed batch counts exactly Total requests: once it has seen Total
// distinct ids (seen), a request id with no record is not one of the
// batch's — Claim ends it failed with lifecycle.CodeMalformedMessage
// (JustEnded), ForceFail records its failure uncounted (counted=0 on the
// record, so no later move touches the counters for it) and CancelRequest
// reports ErrNotFound.
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
// # Racing pairs (escalation)
//
// Escalate starts a request's racing copy (id lifecycle.CopyID): a record
// in the batch's slot with counted 0 — no counter ever moves for it — and
// the batch's escalating counter + 1, which every terminal move of the
// copy takes back exactly once (copy_end in lib.lua). Complete decides the
// winner in the same script: the first completed supersedes its partner
// (Transition.Superseded). MarkPublished of a completed copy counts its
// line as its original's result.
//
// # Finalization
//
// Two steps. When the terminal counters of a sealed batch reach Total, the
// script that made the last move marks it finalizing (a cancelled batch
// stays cancelling) with its outcome: cancelled if the batch was cancelled
// (cancelled wins), else expired if ExpireBatch marked it expiring or if a
// request ended expired past the batch's expires_at, else completed if a
// request completed (or was superseded: its racing copy completed), else
// cancelled if every request was canceled one by one, else failed. It
// turns final — status the outcome, <status>_at and finalized_at set, its
// final event due in the outbox — in the MarkPublished that counts the
// last expected result (published >= total; each counted request's result
// counts once, a superseded original's being its winning copy's line)
// while no racing copy runs (escalating = 0, not waited for past
// expires_at; the copy's end may then turn it final), or in
// FinishBatch (the sweep, after the finalizing grace: results_missing
// says how many never came). Each step is seen by exactly one call:
// Transition.Finalized / Ended.Finalized for the first, MarkPublished's
// returned batches or FinishBatch for the second.
//
// # Expiry
//
// A claim at or after the request's own expires_at or its batch's
// expires_at ends the request expired (Ended.JustEnded) instead of taking
// it. ExpireBatch (the sweep, at the batch's expires_at) seals the batch,
// marks it expiring and counts every pending request expired at once, as
// CancelBatch does for canceled; EndStranded ends in-flight requests whose
// lease is gone and whose message will not bring them back.
//
// # Batch status
//
// Stored: validating from creation, in_progress from the first claim,
// finalizing or cancelling, then the final status.
//
// # Events and indexes
//
// A batch's created and final events each have an outbox field in its
// hash (ClaimBatchEvent, BatchEventDone). <p>:batches:created indexes the
// batches by creation time for ListBatches; <p>:batches:live holds the
// ones the sweep watches (LiveBatches, DropLive); <p>:sweep:lock elects the
// sweep's leader (HoldSweepLock).
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
