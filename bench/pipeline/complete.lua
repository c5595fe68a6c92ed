-- Completes a claimed request when the caller still holds its fence.
-- KEYS[1] -> the request hash (bench:{<id>}:req)
-- ARGV[1] -> fencing token from claim.lua
-- ARGV[2] -> upstream HTTP status
-- ARGV[3] -> now, unix ms
-- Returns: 1 when completed, 0 when the fence moved on (lease lost).
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'completed', 'status', ARGV[2], 'ended_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'owner', 'lease')
return 1
