-- lock.lua: take or keep a lock for ttl: taken when free, kept (ttl
-- renewed) when the caller holds it already.
-- KEYS[1] -> lock key
-- ARGV[1] -> holder
-- ARGV[2] -> ttl, ms
-- Returns: 1 when the caller holds the lock now, else 0
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
