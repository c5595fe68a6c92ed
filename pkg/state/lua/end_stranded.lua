-- end_stranded.lua: the sweep ends an in-flight request nobody holds any
-- more: its lease ended at or before lease_before and its message cannot
-- bring it back (purged, or past the batch's deadline). The fence moves,
-- so a holder that comes back writes nothing. The request stays in the
-- lease index with score 0 until its result is marked published
-- (mark_published.lua), so the sweep publishes it again if it failed to.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> request id
-- ARGV[3] -> lease_before, unix ms
-- ARGV[4] -> target state: expired | failed | canceled
-- ARGV[5] -> failure code
-- ARGV[6] -> failure message
-- ARGV[7] -> retention, ms
-- Returns: {'ok', state, previous, applied, batch...} | {'not_found'}
local now = tonumber(ARGV[1])
local r = redis.call('HMGET', KEYS[1], 'state', 'lease_until')
local state = r[1]
if not state then
  -- gone by retention: nothing left to end
  redis.call('ZREM', KEYS[3], ARGV[2])
  return {'not_found'}
end
if not is_inflight(state) or tonumber(r[2] or '0') > tonumber(ARGV[3]) then
  return {'ok', state, state, 0}
end
record_end(KEYS[1], ARGV[4], ARGV[5], ARGV[6], now, ARGV[7], {fence = true})
local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], batch_load(KEYS[2]), ARGV[2], state, ARGV[4], now, ARGV[7])
redis.call('ZADD', KEYS[3], 0, ARGV[2])
return append_all({'ok', ARGV[4], state, 1}, fin)
