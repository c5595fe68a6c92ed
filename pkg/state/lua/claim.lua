-- claim.lua: take a request under a lease (pending, or in flight with an
-- expired lease), or end it when it can no longer run (batch cancelled, not
-- one of the batch's requests, past its own or its batch's expires_at,
-- reclaimed too often).
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> owner (worker instance id)
-- ARGV[3] -> lease ttl, ms
-- ARGV[4] -> JetStream delivery count (recorded)
-- ARGV[5] -> '1' to claim straight into processing, '0' for claimed
-- ARGV[6] -> max reclaims after lease expiry
-- ARGV[7] -> retention, ms (terminal records; held keys: deadline + retention)
-- ARGV[8] -> request id
-- ARGV[9] -> batch id ('' for batchless)
-- ARGV[10] -> model
-- ARGV[11] -> custom id
-- ARGV[12] -> request expires_at, unix ms (0: none)
-- ARGV[13] -> JetStream stream sequence of the message (recorded: the sweep
--             checks whether the message still exists)
-- ARGV[14] -> the request's result_subject ('' for none; recorded, so the
--             sweep publishes a result it makes where the client wants it)
-- Returns one of:
--   {'held', state, token, attempt, lease_until, batch_expires_at} (a claim
--     into processing starts an attempt and counts it: attempt includes it;
--     batch_expires_at is 0 without a batch record)
--   {'no_batch'} (a request naming a batch that has no record, and no
--     record of its own: nothing is written)
--   {'ended', state, err_code, err_msg, status, attempt, published, outbox, just_ended, batch...}
--     (batch...: flat HGETALL of the batch when this call finalized it).
--     A request without a record that its sealed batch cannot count (every
--     one of its requests was seen) is not one of the batch's: it ends
--     failed (malformed_message) without counters.
--   {'lease_held', owner, lease_until} (the same owner's same delivery —
--     same JetStream delivery count and stream sequence — gets 'held'
--     back instead: its earlier claim went through and its answer was lost)
--   {'not_yet', not_before}
local now = tonumber(ARGV[1])
local owner = ARGV[2]
local id = ARGV[8]

local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until', 'not_before', 'reclaims',
  'attempt', 'expires_at', 'err_code', 'err_msg', 'status', 'published', 'outbox', 'delivery', 'seq', 'fence',
  'counted')
local exists = r[1] ~= false
local state = r[1] or 'pending'
local attempt = tonumber(r[6] or '0')
local b = batch_load(KEYS[2])
if not exists and ARGV[9] ~= '' and b == nil then
  return {'no_batch'}
end

local function ended(st, code, msg, status, published, outbox, just, fin)
  return append_all({'ended', st, code or '', msg or '', tonumber(status or '0'), attempt,
    tonumber(published or '0'), outbox or '', just and 1 or 0}, fin)
end

if state == 'canceled' or HARD[state] then
  return ended(state, r[8], r[9], r[10], r[11], r[12], false, nil)
end

local inflight = is_inflight(state)
local lease_until = tonumber(r[3] or '0')
if inflight and lease_until > now then
  if r[2] == owner and r[13] == ARGV[4] and r[14] == ARGV[13] and ARGV[13] ~= '0' and
      (ARGV[5] ~= '1' or state == 'processing') then
    -- the same delivery claiming again: its first claim went through but
    -- its answer was lost (a connection cut with the reply on the way).
    -- The lease is its own: hand it back as it stands, attempt included.
    local bexp = 0
    if b ~= nil then
      bexp = b.expires_at
    end
    return {'held', state, tonumber(r[15] or '0'), attempt, lease_until, bexp}
  end
  return {'lease_held', r[2] or '', lease_until}
end

-- a request seen for the first time is counted by its batch here (every
-- path below writes its record); a racing copy (escalation) has a record
-- that says its batch does not count it
local counted = exists and r[16] ~= '0'
if not exists then
  counted = batch_admit(KEYS[2], b)
end

-- end_now makes the terminal move this claim decided on. A request its
-- batch does not count leaves the counters alone.
local function end_now(to, code, msg, extra)
  if not exists then
    record_init(KEYS[1], id, ARGV[9], ARGV[10], ARGV[11], ARGV[12], now, counted)
    if ARGV[14] ~= '' then
      redis.call('HSET', KEYS[1], 'result_subject', ARGV[14])
    end
  end
  local fields = {'delivery', ARGV[4], 'seq', ARGV[13]}
  if extra ~= nil then
    fields = append_all(fields, extra)
  end
  -- owner and fence stay: a holder whose expired lease nobody reclaimed may
  -- still replace a soft canceled with its real result.
  record_end(KEYS[1], to, code, msg, now, ARGV[7], {fields = fields})
  local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], b, id, state, to, now, ARGV[7])
  return ended(to, code, msg, r[10], '0', '', true, fin)
end

if not exists and b ~= nil and not counted then
  -- every request of the batch is accounted for: this one is not one of them
  return end_now('failed', 'malformed_message', 'request ' .. id .. ' is not part of batch ' .. ARGV[9] ..
    ' (its ' .. b.total .. ' requests are all accounted for)', nil)
end

if b ~= nil and b.cancelled then
  return end_now('canceled', 'batch_cancelled', 'the batch was cancelled', nil)
end

local expires_at = tonumber(r[7] or ARGV[12])
if expires_at > 0 and now >= expires_at then
  return end_now('expired', 'batch_expired', 'the request expired before it could finish', nil)
end
if b ~= nil and b.expires_at > 0 and now >= b.expires_at then
  return end_now('expired', 'batch_expired', 'the batch expired before the request could finish', nil)
end

if state == 'pending' then
  local nb = tonumber(r[4] or '0')
  if nb > now then
    return {'not_yet', nb}
  end
end

local reclaims = tonumber(r[5] or '0')
if inflight then
  reclaims = reclaims + 1
  if reclaims > tonumber(ARGV[6]) then
    return end_now('failed', 'max_deliveries_exceeded',
      'reclaimed ' .. reclaims .. ' times after lease expiry', {'reclaims', reclaims})
  end
end

local token = redis.call('HINCRBY', KEYS[1], 'fence', 1)
local to = 'claimed'
if ARGV[5] == '1' then
  to = 'processing'
end
local until_ms = now + tonumber(ARGV[3])
-- one HSET for the record: its identity when it is new, the lease, and the
-- attempt a claim into processing starts
local f = {'state', to, 'owner', owner, 'lease_until', until_ms, 'claimed_at', now,
  'updated_at', now, 'delivery', ARGV[4], 'seq', ARGV[13], 'reclaims', reclaims}
if not exists then
  append_all(f, {'id', id, 'batch', ARGV[9], 'model', ARGV[10], 'custom_id', ARGV[11],
    'expires_at', ARGV[12], 'published', 0, 'created_at', now, 'counted', counted and 1 or 0})
  if ARGV[14] ~= '' then
    append_all(f, {'result_subject', ARGV[14]})
  end
end
if to == 'processing' then
  -- the attempt counts from its start, so a call cut by a crash or a
  -- shutdown is counted too; a holder that gives the request back without
  -- calling takes it back (finish.lua, requeue.lua)
  attempt = attempt + 1
  append_all(f, {'started_at', now})
end
append_all(f, {'attempt', attempt})
redis.call('HSET', KEYS[1], unpack(f))
-- a held request's keys last until its batch's expires_at (its own when it
-- has no batch record) plus retention; ending it shortens its record's
local ttl = live_ttl(expires_at, now, ARGV[7])
if b ~= nil then
  ttl = live_ttl(b.expires_at, now, ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], ttl)
if b ~= nil then
  if counted then
    batch_move(KEYS[2], b, bucket_of(state, b), 'in_progress')
  end
  -- a racing copy is in the lease index too: the sweep ends it when its
  -- holder dies
  redis.call('ZADD', KEYS[3], until_ms, id)
  redis.call('HSETNX', KEYS[2], 'started_at', now)
  if b.status == 'validating' then
    redis.call('HSET', KEYS[2], 'status', 'in_progress')
  end
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl) -- the same instant CreateBatch set; covers older batches
end
local batch_expires = 0
if b ~= nil then
  batch_expires = b.expires_at
end
return {'held', to, token, attempt, until_ms, batch_expires}
