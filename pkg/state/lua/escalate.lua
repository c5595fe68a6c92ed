-- escalate.lua: start the racing copy of a request near its deadline
-- (escalation, mode race): at most one per original, in the original's
-- batch slot. The original gets escalated_to; the copy's record is created
-- pending, not counted by the batch (counted 0), with escalated_from and
-- esc_open, the original's custom_id, expires_at and result_subject, and
-- the escalation model; the batch's escalating counter grows by one. The
-- caller publishes the copy's message after this (a message whose record
-- is missing would be admitted as a new request of the batch).
-- KEYS[1] -> original's hash <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash      <p>:{<tag>}:batch
-- KEYS[3] -> lease index     <p>:{<tag>}:leases (unused; every request
--            script takes the same three keys first)
-- KEYS[4] -> copy's hash     <p>:{<tag>}:req:<copy id>
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> original's id
-- ARGV[3] -> copy's id
-- ARGV[4] -> escalation model
-- ARGV[5] -> retention, ms
-- Returns: {'ok'} | {'skip', reason}
local now = tonumber(ARGV[1])
local r = redis.call('HMGET', KEYS[1], 'state', 'escalated_to', 'escalated_from', 'counted', 'custom_id',
  'expires_at', 'result_subject', 'batch')
local state = r[1]
if not state then
  return {'skip', 'no record'}
end
if state ~= 'pending' and not is_inflight(state) then
  return {'skip', 'ended ' .. state}
end
if (r[2] or '') ~= '' then
  return {'skip', 'escalated already'}
end
if (r[3] or '') ~= '' then
  return {'skip', 'a racing copy is not escalated again'}
end
if r[4] == '0' then
  return {'skip', 'not counted by its batch'}
end
local b = batch_load(KEYS[2])
if b == nil then
  return {'skip', 'no batch'}
end
if b.cancelled or b.expiring or b.final or (b.expires_at > 0 and now >= b.expires_at) then
  return {'skip', 'batch over'}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'skip', 'the copy id is taken'}
end
redis.call('HSET', KEYS[1], 'escalated_to', ARGV[3])
record_init(KEYS[4], ARGV[3], r[8] or '', ARGV[4], r[5] or '', r[6] or '0', now, false)
redis.call('HSET', KEYS[4], 'state', 'pending', 'updated_at', now, 'escalated_from', ARGV[2], 'esc_open', 1)
if (r[7] or '') ~= '' then
  redis.call('HSET', KEYS[4], 'result_subject', r[7])
end
-- the copy lives at least as long as its original (whose deadline may be
-- the request's own when the batch has none)
redis.call('PEXPIRE', KEYS[4], math.max(live_ttl(b.expires_at, now, ARGV[5]), redis.call('PTTL', KEYS[1])))
redis.call('HINCRBY', KEYS[2], 'escalating', 1)
return {'ok'}
