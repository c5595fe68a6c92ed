-- requeue.lua: the lease holder gives its request back to pending: a retry
-- (processing only; the attempt, counted when the claim started it, stays
-- spent; not_before set) or a release (claimed or processing; the attempt
-- stays counted when its call was made, cut short or not, and is taken back
-- when it made none). In a cancelled batch the request ends canceled
-- instead.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> owner
-- ARGV[3] -> fencing token
-- ARGV[4] -> mode: 'retry' | 'release'
-- ARGV[5] -> not_before, unix ms (retry; 0 for release)
-- ARGV[6] -> failure code ('' keeps the recorded one)
-- ARGV[7] -> failure message
-- ARGV[8] -> HTTP status of the failed attempt (0: none)
-- ARGV[9] -> retention, ms
-- ARGV[10] -> request id
-- ARGV[11] -> '1' when the holder made no upstream call (release only)
-- Returns: {'ok', state, previous, applied, batch...} | {'lost', state} | {'illegal', state}
local now = tonumber(ARGV[1])
local retry = ARGV[4] == 'retry'
local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'fence', 'attempt')
local state = r[1]
if not state then
  return {'lost', ''}
end
if HARD[state] then
  return {'ok', state, state, 0}
end
local mine = r[2] == ARGV[2] and r[3] == ARGV[3]
if not mine then
  return {'lost', state}
end
if state == 'canceled' then
  return {'ok', state, state, 0}
end
if not is_inflight(state) then
  return {'lost', state}
end
if retry and state ~= 'processing' then
  return {'illegal', state}
end

local attempt = tonumber(r[4] or '0')
if not retry and ARGV[11] == '1' and state == 'processing' then
  attempt = math.max(attempt - 1, 0)
end
if retry then
  redis.call('HSET', KEYS[1], 'err_code', ARGV[6], 'err_msg', ARGV[7], 'status', ARGV[8])
end
local b = batch_load(KEYS[2])
if b ~= nil and b.cancelled then
  -- the holder's own write: owner and token stay
  record_end(KEYS[1], 'canceled', 'batch_cancelled', 'the batch was cancelled', now, ARGV[9], {
    attempt = attempt,
  })
  local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], b, ARGV[10], state, 'canceled', now, ARGV[9])
  return append_all({'ok', 'canceled', state, 1}, fin)
end
if b ~= nil and b.expiring then
  -- the batch counts its queued requests expired: the request ends so
  record_end(KEYS[1], 'expired', 'batch_expired', 'the batch expired before the request could finish', now,
    ARGV[9], {attempt = attempt})
  local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], b, ARGV[10], state, 'expired', now, ARGV[9])
  return append_all({'ok', 'expired', state, 1}, fin)
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'attempt', attempt, 'owner', '', 'lease_until', 0,
  'not_before', ARGV[5], 'updated_at', now)
if b ~= nil then
  redis.call('ZREM', KEYS[3], ARGV[10])
end
batch_move(KEYS[2], counted_batch(KEYS[1], b), bucket_of(state, b), 'pending')
return {'ok', 'pending', state, 1}
