-- expire_batch.lua: the sweep expires a batch past its expires_at: marked
-- expiring, sealed at what it saw when open, and every request not yet
-- claimed counted expired at once (expired += pending, pending = 0).
-- In-flight requests end at the deadline by their holders (or by the
-- sweep when their lease is gone). A cancelled or finalized batch is left
-- alone.
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- KEYS[2] -> lease index    <p>:{<batch>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> retention, ms
-- Returns: {'ok', applied, batch...} (batch...: flat HGETALL when this
-- call finalized the batch) | {'not_found'} | {'not_yet', expires_at}
local now = tonumber(ARGV[1])
local b = batch_load(KEYS[1])
if b == nil then
  return {'not_found'}
end
if b.cancelled or b.final or b.expiring then
  return {'ok', 0}
end
if b.expires_at == 0 or now < b.expires_at then
  return {'not_yet', b.expires_at}
end
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending') or '0')
redis.call('HINCRBY', KEYS[1], 'expired', pending)
redis.call('HSET', KEYS[1], 'pending', 0, 'expiring', 1, 'sealed', 1)
b.expiring, b.sealed = true, true
local fin = batch_finalize(KEYS[1], KEYS[2], b, now, ARGV[2])
return append_all({'ok', 1}, fin)
