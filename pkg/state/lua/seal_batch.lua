-- seal_batch.lua: fix the total of an open batch. The requests not seen
-- yet are counted pending (canceled or expired when the batch is
-- cancelled or expiring); the batch may finalize at once when every
-- request it saw has ended and the total is what it saw. Sealing again
-- with the same total is a no-op.
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- KEYS[2] -> lease index    <p>:{<batch>}:leases
-- ARGV[1] -> total
-- ARGV[2] -> now, unix ms
-- ARGV[3] -> retention, ms
-- Returns: {'ok', applied, batch...} | {'not_found'} |
-- {'conflict', stored_total} | {'too_few', seen}
local now = tonumber(ARGV[2])
local total = tonumber(ARGV[1])
local b = batch_load(KEYS[1])
if b == nil then
  return {'not_found'}
end
if b.sealed then
  if b.total ~= total then
    return {'conflict', b.total}
  end
  return append_all({'ok', 0}, redis.call('HGETALL', KEYS[1]))
end
if total < b.seen then
  return {'too_few', b.seen}
end
redis.call('HINCRBY', KEYS[1], bucket_of('pending', b), total - b.total)
redis.call('HSET', KEYS[1], 'total', total, 'sealed', 1)
b.total, b.sealed = total, true
batch_finalize(KEYS[1], KEYS[2], b, now, ARGV[3])
return append_all({'ok', 1}, redis.call('HGETALL', KEYS[1]))
