-- lib.lua: helpers prepended to every script that moves a request or a batch
-- (withLib in scripts.go; not to mark_published and the slot scripts). Not a
-- script on its own: no KEYS, no ARGV, no return.
--
-- Request hash fields: id batch model custom_id expires_at state attempt
-- owner fence lease_until not_before reclaims delivery created_at claimed_at
-- started_at finished_at updated_at routed_model status err_code err_msg
-- published outbox superseded_by.
-- Batch hash fields: id spec completion_window endpoint metadata created_at
-- expires_at total pending in_progress completed failed canceled superseded
-- expired status cancelled cancelling_at started_at finalized_at expiring.

local HARD = {completed = true, failed = true, superseded = true, expired = true}

local function is_inflight(state)
  return state == 'claimed' or state == 'processing'
end

-- batch_load returns the batch's counting view, or nil when it has no record.
local function batch_load(bkey)
  local v = redis.call('HMGET', bkey, 'total', 'cancelled', 'finalized_at', 'expiring', 'expires_at')
  if not v[1] then
    return nil
  end
  return {
    total = tonumber(v[1]),
    cancelled = v[2] == '1',
    final = (v[3] or '') ~= '',
    expiring = v[4] == '1',
    expires_at = tonumber(v[5] or '0') or 0,
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

-- batch_pending reads the batch's pending counter.
local function batch_pending(bkey)
  return tonumber(redis.call('HGET', bkey, 'pending') or '0')
end

-- bucket_of names the counter a request in state is counted in. A pending
-- request of a cancelled batch is already counted canceled (CancelBatch).
local function bucket_of(state, b)
  if state == 'pending' then
    if b ~= nil and b.cancelled then
      return 'canceled'
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

-- batch_finalize finalizes the batch when every request is terminal and it
-- is not final yet. Returns the batch hash (flat HGETALL) when this call
-- finalized it, else nil. Exactly one script call can see the transition.
-- Status: cancelled if cancelled; expired if marked expiring, or if a
-- request ended expired and the batch is past its expires_at; completed if
-- one completed; cancelled if all were canceled; else failed.
local function batch_finalize(bkey, lkey, b, now, retention)
  if b == nil or b.final then
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
  local status
  if b.cancelled then
    status = 'cancelled'
  elseif b.expiring or (tonumber(c[5] or '0') >= 1 and b.expires_at > 0 and now >= b.expires_at) then
    status = 'expired'
  elseif tonumber(c[1] or '0') >= 1 then
    status = 'completed'
  elseif tonumber(c[3] or '0') >= b.total then
    status = 'cancelled'
  else
    status = 'failed'
  end
  redis.call('HSET', bkey, 'status', status, 'finalized_at', now)
  redis.call('PEXPIRE', bkey, retention)
  redis.call('DEL', lkey)
  b.final = true
  return redis.call('HGETALL', bkey)
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
local function record_init(rkey, id, batch, model, custom_id, expires_at, now)
  redis.call('HSET', rkey, 'id', id, 'batch', batch, 'model', model, 'custom_id', custom_id,
    'expires_at', expires_at, 'attempt', 0, 'published', 0, 'created_at', now)
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
    redis.call('HSET', rkey, 'owner', '')
  end
  redis.call('HSET', rkey, 'state', to, 'lease_until', 0, 'err_code', code, 'err_msg', msg,
    'finished_at', now, 'updated_at', now)
  if opts.attempt ~= nil then
    redis.call('HSET', rkey, 'attempt', opts.attempt)
  end
  if opts.status ~= nil then
    redis.call('HSET', rkey, 'status', opts.status)
  end
  if (opts.routed_model or '') ~= '' then
    redis.call('HSET', rkey, 'routed_model', opts.routed_model)
  end
  if not opts.keep_result then
    if (opts.outbox or '') ~= '' then
      redis.call('HSET', rkey, 'outbox', opts.outbox, 'published', 0)
    else
      redis.call('HDEL', rkey, 'outbox')
      redis.call('HSET', rkey, 'published', 0)
    end
  end
  if opts.fields ~= nil then
    redis.call('HSET', rkey, unpack(opts.fields))
  end
  redis.call('PEXPIRE', rkey, retention)
end

-- unseen_refusal answers a control-plane move (cancel, supersede) on a
-- request that has no record yet, or returns nil to go on. A cancelled
-- batch already counted it canceled (its claim will end it); a batch whose
-- pending counter is 0 has no such request.
local function unseen_refusal(bkey, b)
  if b == nil then
    return nil
  end
  if b.cancelled then
    return {'ok', 'canceled', 'pending', 0}
  end
  if batch_pending(bkey) <= 0 then
    return {'not_found'}
  end
  return nil
end

-- batch_end accounts a request that just ended (from state, into bucket
-- to): out of the lease index, counters moved, batch finalized when it was
-- the last. Returns batch_finalize's answer; a no-op without a batch.
local function batch_end(bkey, lkey, b, id, state, to, now, retention)
  if b == nil then
    return nil
  end
  redis.call('ZREM', lkey, id)
  batch_move(bkey, b, bucket_of(state, b), to)
  return batch_finalize(bkey, lkey, b, now, retention)
end
