-- cancel_batch.lua: mark a batch cancelling, seal it at the requests it
-- has seen when it was open, and count every request not yet claimed as
-- canceled at once (canceled += pending, pending = 0).
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- KEYS[2] -> lease index    <p>:{<batch>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> retention, ms
-- Returns: {'ok', applied, batch...} (batch...: flat HGETALL when this call
-- finalized the batch) | {'not_found'}
local now = tonumber(ARGV[1])
local b = batch_load(KEYS[1])
if b == nil then
  return {'not_found'}
end
-- an expiring batch counts its queued requests expired already; it ends
-- expired (as ExpireBatch leaves a cancelled batch alone)
if b.cancelled or b.final or b.expiring then
  return {'ok', 0}
end
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending') or '0')
redis.call('HINCRBY', KEYS[1], 'canceled', pending)
redis.call('HSET', KEYS[1], 'pending', 0, 'cancelled', 1, 'sealed', 1, 'status', 'cancelling', 'cancelling_at', now)
b.cancelled, b.sealed = true, true
local fin = batch_finalize(KEYS[1], KEYS[2], b, now, ARGV[2])
return append_all({'ok', 1}, fin)
