-- slot_refresh.lua: extend the slots of live holders of one model.
-- KEYS[1] -> slot holders   <p>:{slots:<model>}:holders (ZSET holder → expiry ms)
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> ttl, ms
-- ARGV[3..n] -> holders
-- Returns: the number of holders whose slot was extended
local now = tonumber(ARGV[1])
local until_ms = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = 0
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], until_ms, ARGV[i])
    n = n + 1
  end
end
-- the key lives until its last holder's expiry, measured from the passed
-- clock (PEXPIRE, not PEXPIREAT: the server's clock may differ)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(last[2]) - now)))
end
return n
