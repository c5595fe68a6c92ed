-- slot_acquire.lua: take (or keep) one of a model's global concurrency slots.
-- KEYS[1] -> slot holders   <p>:{slots:<model>}:holders (ZSET holder → expiry ms)
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> holder
-- ARGV[3] -> limit
-- ARGV[4] -> ttl, ms
-- Returns: 1 when the holder has a slot, 0 when all slots are taken
local now = tonumber(ARGV[1])
local until_ms = now + tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], until_ms, ARGV[2])
-- the key lives until its last holder's expiry, measured from the passed
-- clock (PEXPIRE, not PEXPIREAT: the server's clock may differ)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(last[2]) - now)))
return 1
