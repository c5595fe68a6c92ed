-- lib.lua: helpers prepended to every script that moves a request or a batch
-- (withLib in scripts.go; not to the slot scripts). Not a script on its own:
-- no KEYS, no ARGV, no return.
--
-- Request hash fields: id batch model custom_id expires_at state attempt
-- owner fence lease_until not_before reclaims delivery seq created_at
-- claimed_at started_at finished_at updated_at routed_model status err_code
-- err_msg published outbox superseded_by counted pub_counted result_subject
-- escalated_to (an original: its racing copy's id) escalated_from (a racing
-- copy: its original's id) esc_open (a copy whose end the batch's
-- escalating counter still waits for).
-- Batch hash fields: id completion_window endpoint metadata total_given
-- created_at expires_at total seen sealed pending in_progress completed
-- failed canceled superseded expired published status outcome cancelled
-- cancelling_at started_at finalizing_at finalized_at <outcome>_at
-- results_missing expiring evt_created evt_created_at evt_final
-- evt_final_at escalating (racing copies not ended yet).

local HARD = {completed = true, failed = true, superseded = true, expired = true}

local function is_inflight(state)
  return state == 'claimed' or state == 'processing'
end

-- batch_load returns the batch's counting view, or nil when it has no record.
local function batch_load(bkey)
  local v = redis.call('HMGET', bkey, 'total', 'cancelled', 'finalizing_at', 'expiring', 'expires_at',
    'sealed', 'seen', 'status')
  if not v[1] then
    return nil
  end
  return {
    total = tonumber(v[1]),
    cancelled = v[2] == '1',
    -- every request has ended (finalizing, or final since)
    final = (v[3] or '') ~= '',
    expiring = v[4] == '1',
    expires_at = tonumber(v[5] or '0') or 0,
    sealed = v[6] ~= '0',
    seen = tonumber(v[7] or '0') or 0,
    status = v[8] or '',
  }
end

-- live_ttl is the TTL, in ms from now, of a key that must last until
-- deadline (unix ms; 0: none) plus retention: a batch's keys and the
-- records of requests that are not terminal yet, so nothing outlives its
-- deadline by more than retention even if it never ends. Without a
-- deadline it is retention. Relative to the passed clock (PEXPIRE, not
-- PEXPIREAT: the server's clock may differ), and never below 1 ms (a
-- PEXPIRE of 0 or less deletes the key at once).
local function live_ttl(deadline, now, retention)
  local ttl = tonumber(retention)
  deadline = tonumber(deadline) or 0
  if deadline > 0 then
    ttl = deadline + ttl - now
  end
  return math.max(1, ttl)
end

-- bucket_of names the counter a request in state is counted in. A pending
-- request of a cancelled batch is already counted canceled (CancelBatch),
-- one of an expiring batch expired (ExpireBatch).
local function bucket_of(state, b)
  if state == 'pending' then
    if b ~= nil and b.cancelled then
      return 'canceled'
    end
    if b ~= nil and b.expiring then
      return 'expired'
    end
    return 'pending'
  end
  if is_inflight(state) then
    return 'in_progress'
  end
  return state
end

-- batch_move moves one request between counters; a no-op without a batch.
local function batch_move(bkey, b, from, to)
  if b == nil or from == to then
    return
  end
  redis.call('HINCRBY', bkey, from, -1)
  redis.call('HINCRBY', bkey, to, 1)
end

-- batch_final turns a batch whose requests have all ended final once
-- every expected result is published (published >= total: each request
-- the batch counts has one result line, a superseded original its winning
-- copy's) and no racing copy is still running (escalating = 0; an expiring
-- batch, or one past its expires_at, does not wait for them), or at once
-- when force (the sweep, after the finalizing grace: results of requests
-- whose messages were lost never come). Sets the outcome's status and
-- time, the missing results, the final event's outbox, and the retention
-- TTL. Returns the batch hash (flat HGETALL) when this call turned it
-- final, else nil; exactly one call can.
local function batch_final(bkey, now, retention, force)
  local v = redis.call('HMGET', bkey, 'outcome', 'finalized_at', 'published', 'total', 'escalating', 'expiring',
    'expires_at')
  if (v[1] or '') == '' or (v[2] or '') ~= '' then
    return nil
  end
  local expected = tonumber(v[4] or '0')
  local published = tonumber(v[3] or '0')
  if published < expected and not force then
    return nil
  end
  local expires_at = tonumber(v[7] or '0') or 0
  local over = v[6] == '1' or (expires_at > 0 and now >= expires_at)
  if tonumber(v[5] or '0') > 0 and not force and not over then
    return nil
  end
  redis.call('HSET', bkey, 'status', v[1], 'finalized_at', now, v[1] .. '_at', now,
    'results_missing', math.max(0, expected - published), 'evt_final', 'pending', 'evt_final_at', now)
  redis.call('PEXPIRE', bkey, retention)
  return redis.call('HGETALL', bkey)
end

-- batch_finalize marks a sealed batch whose requests have all ended:
-- status finalizing (cancelling stays cancelling), the outcome it will
-- turn to, finalizing_at; then batch_final turns it final if its results
-- are all out already. Returns the batch hash when this call marked it,
-- else nil; exactly one call can. Outcome: cancelled if cancelled; expired
-- if marked expiring, or if a request ended expired and the batch is past
-- its expires_at; completed if one completed (or was superseded: its
-- racing copy completed); cancelled if all were
-- canceled; else failed.
local function batch_finalize(bkey, lkey, b, now, retention)
  if b == nil or b.final or not b.sealed then
    return nil
  end
  local c = redis.call('HMGET', bkey, 'completed', 'failed', 'canceled', 'superseded', 'expired')
  local terminal = 0
  for i = 1, 5 do
    terminal = terminal + tonumber(c[i] or '0')
  end
  if terminal < b.total then
    return nil
  end
  local outcome
  if b.cancelled then
    outcome = 'cancelled'
  elseif b.expiring or (tonumber(c[5] or '0') >= 1 and b.expires_at > 0 and now >= b.expires_at) then
    outcome = 'expired'
  elseif tonumber(c[1] or '0') + tonumber(c[4] or '0') >= 1 then
    -- a superseded request's answer is its winning copy's completed line
    outcome = 'completed'
  elseif tonumber(c[3] or '0') >= b.total then
    outcome = 'cancelled'
  else
    outcome = 'failed'
  end
  local status = 'finalizing'
  if b.cancelled then
    status = 'cancelling'
  end
  -- the lease index stays: it may still hold requests the sweep ended whose
  -- result is not out yet (end_stranded.lua); it expires with the batch
  redis.call('HSET', bkey, 'status', status, 'outcome', outcome, 'finalizing_at', now)
  b.final = true
  batch_final(bkey, now, retention, false)
  return redis.call('HGETALL', bkey)
end

-- batch_admit counts a request the batch sees for the first time (the
-- caller creates its record): seen + 1, and for an open batch total + 1
-- and one more in the counter a pending request is kept in. Returns false
-- when the batch is sealed and every one of its requests was seen already:
-- the request is not one of the batch's and no counter may move for it.
local function batch_admit(bkey, b)
  if b == nil then
    return false
  end
  if b.sealed then
    if b.seen >= b.total then
      return false
    end
  else
    redis.call('HINCRBY', bkey, 'total', 1)
    redis.call('HINCRBY', bkey, bucket_of('pending', b), 1)
    b.total = b.total + 1
  end
  redis.call('HINCRBY', bkey, 'seen', 1)
  b.seen = b.seen + 1
  return true
end

-- append_all appends the items of src to dst.
local function append_all(dst, src)
  if src ~= nil then
    for i = 1, #src do
      dst[#dst + 1] = src[i]
    end
  end
  return dst
end

-- record_init writes the identity fields of a record created lazily.
-- counted says whether the batch counts it (batch_admit).
local function record_init(rkey, id, batch, model, custom_id, expires_at, now, counted)
  redis.call('HSET', rkey, 'id', id, 'batch', batch, 'model', model, 'custom_id', custom_id,
    'expires_at', expires_at, 'attempt', 0, 'published', 0, 'created_at', now, 'counted', counted and 1 or 0)
end

-- record_end writes a request's terminal move: state to, the failure
-- (code and message, '' for none), no lease, finished_at and updated_at =
-- now, and the record then expires after retention. Every script that ends
-- a request writes it here; where moves differ, opts says so (a nil field
-- leaves the record's value as it is):
--   attempt       the attempts spent, when the move counts them
--   status        the HTTP status of the last attempt (nil keeps the one a
--                 retry recorded)
--   routed_model  the model the call went to ('' keeps the recorded one)
--   outbox        the result line the move stores ('' or nil for none)
--   keep_result   true keeps the outbox and the published flag a previous
--                 terminal move left (supersede of a failed original);
--                 otherwise the outbox is replaced and published reset to 0,
--                 since this move's result has not gone out
--   fence         true bumps the fencing token and clears the owner: a move
--                 made over the holder's head, after which it writes
--                 nothing. Without it owner and token stay, so the holder
--                 can still replace a soft canceled with its real result.
--   fields        a flat list of further field/value pairs to set
local function record_end(rkey, to, code, msg, now, retention, opts)
  opts = opts or {}
  if opts.fence then
    redis.call('HINCRBY', rkey, 'fence', 1)
  end
  -- one HSET for every field the move sets
  local f = {'state', to, 'lease_until', 0, 'err_code', code, 'err_msg', msg, 'finished_at', now, 'updated_at', now}
  if opts.fence then
    append_all(f, {'owner', ''})
  end
  if opts.attempt ~= nil then
    append_all(f, {'attempt', opts.attempt})
  end
  if opts.status ~= nil then
    append_all(f, {'status', opts.status})
  end
  if (opts.routed_model or '') ~= '' then
    append_all(f, {'routed_model', opts.routed_model})
  end
  if not opts.keep_result then
    if (opts.outbox or '') ~= '' then
      append_all(f, {'outbox', opts.outbox, 'published', 0})
    else
      redis.call('HDEL', rkey, 'outbox')
      append_all(f, {'published', 0})
    end
  end
  append_all(f, opts.fields)
  redis.call('HSET', rkey, unpack(f))
  redis.call('PEXPIRE', rkey, retention)
end

-- unseen_refusal answers a control-plane move (cancel, supersede) on a
-- request that has no record yet, or returns nil to go on. A sealed batch
-- that has seen all of its requests has no such request.
local function unseen_refusal(b)
  if b == nil then
    return nil
  end
  if b.sealed and b.seen >= b.total then
    return {'not_found'}
  end
  return nil
end

-- copy_end accounts the end of a racing copy (escalation) exactly once:
-- escalating - 1 and out of the lease index (a copy the sweep ended waits
-- there for its mark: end_stranded.lua adds it back); the batch turns final
-- when it waited only for this copy. Returns batch_final's answer; nil for
-- a request that is not a copy still open.
local function copy_end(rkey, bkey, lkey, id, now, retention)
  if redis.call('HGET', rkey, 'esc_open') ~= '1' then
    return nil
  end
  redis.call('HSET', rkey, 'esc_open', 0)
  redis.call('ZREM', lkey, id)
  if redis.call('EXISTS', bkey) == 0 then
    return nil
  end
  redis.call('HINCRBY', bkey, 'escalating', -1)
  return batch_final(bkey, now, retention, false)
end

-- counted_batch is b when the batch counts the request of rkey, nil when
-- its record says it does not (a racing copy; a request its sealed batch
-- refused): the counters never move for such a request.
local function counted_batch(rkey, b)
  if b ~= nil and redis.call('HGET', rkey, 'counted') == '0' then
    return nil
  end
  return b
end

-- batch_end accounts a request of rkey that just ended (from state, into
-- bucket to): a racing copy through copy_end; a request its batch counts
-- out of the lease index, counters moved, batch finalized when it was the
-- last. Returns the batch hash when this call finalized the batch; a no-op
-- without a batch.
local function batch_end(rkey, bkey, lkey, b, id, state, to, now, retention)
  local fin = copy_end(rkey, bkey, lkey, id, now, retention)
  b = counted_batch(rkey, b)
  if b == nil then
    return fin
  end
  redis.call('ZREM', lkey, id)
  batch_move(bkey, b, bucket_of(state, b), to)
  return batch_finalize(bkey, lkey, b, now, retention) or fin
end

-- supersede_partner ends the racing partner of a request that completed
-- (escalation): the original of a winning copy, or the copy of an original
-- that won. pending, claimed and processing partners become superseded —
-- and a failed original too (its published failure line stops counting as
-- its result: the copy's line counts once marked, mark_published.lua, so
-- the batch waits for it) —
-- with the fence bumped and the owner cleared, so the partner's holder
-- writes nothing more; its counters move (an original) or escalating
-- drops (a copy). Returns whether the partner was superseded, and the
-- batch hash when this call finalized the batch.
local function supersede_partner(pkey, bkey, lkey, pid, winner, now, retention)
  local st = redis.call('HGET', pkey, 'state')
  if not st then
    return false, nil
  end
  local from_copy = redis.call('HGET', pkey, 'escalated_from')
  if st ~= 'pending' and not is_inflight(st) and not (st == 'failed' and (from_copy or '') == '') then
    return false, nil
  end
  local msg = 'a racing copy of the request completed first'
  if (from_copy or '') ~= '' then
    msg = 'the original request completed first'
  end
  record_end(pkey, 'superseded', 'superseded', msg, now, retention, {
    fence = true, keep_result = true, fields = {'superseded_by', winner},
  })
  local pc = redis.call('HMGET', pkey, 'pub_counted', 'counted')
  if pc[1] == '1' and pc[2] ~= '0' and redis.call('EXISTS', bkey) == 1 then
    -- a failed original's published line no longer counts as its result:
    -- the winning copy's line does (mark_published), and the batch waits
    -- for it
    redis.call('HSET', pkey, 'pub_counted', 0)
    redis.call('HINCRBY', bkey, 'published', -1)
  end
  local fin = batch_end(pkey, bkey, lkey, batch_load(bkey), pid, st, 'superseded', now, retention)
  if st == 'failed' then
    -- a failed original overturned after its batch's outcome was set (it
    -- waited for this copy): one request completed after all
    local o = redis.call('HMGET', bkey, 'outcome', 'finalized_at')
    if o[1] == 'failed' and (o[2] or '') == '' then
      redis.call('HSET', bkey, 'outcome', 'completed')
    end
  end
  return true, fin
end
