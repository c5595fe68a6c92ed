-- cancel_request.lua: the control plane cancels one request. pending,
-- claimed and processing become canceled (soft: the holder keeps owner and
-- token, so its later Complete/Fail still wins); terminals are left alone.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> request id
-- ARGV[3] -> batch id
-- ARGV[4] -> retention, ms
-- Returns: {'ok', state, previous, applied, batch...} | {'not_found'}
local now = tonumber(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'state')
local state = cur or 'pending'
if state == 'canceled' or HARD[state] then
  return {'ok', state, state, 0}
end
local b = batch_load(KEYS[2])
if not cur and b ~= nil then
  if b.cancelled then
    -- already counted canceled by CancelBatch; its claim will end it
    return {'ok', 'canceled', 'pending', 0}
  end
  if tonumber(redis.call('HGET', KEYS[2], 'pending') or '0') <= 0 then
    -- nothing left to count: no such request in this batch
    return {'not_found'}
  end
end
if not cur then
  record_init(KEYS[1], ARGV[2], ARGV[3], '', '', 0, now)
end
redis.call('HSET', KEYS[1], 'state', 'canceled', 'lease_until', 0, 'err_code', 'request_cancelled',
  'err_msg', 'the request was cancelled', 'finished_at', now, 'updated_at', now, 'published', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local fin = nil
if b ~= nil then
  redis.call('ZREM', KEYS[3], ARGV[2])
  batch_move(KEYS[2], b, bucket_of(state, b), 'canceled')
  fin = batch_finalize(KEYS[2], KEYS[3], b, now, ARGV[4])
end
return append_all({'ok', 'canceled', state, 1}, fin)
