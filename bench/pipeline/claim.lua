-- Claims a request for one attempt: the request is not terminal, so it
-- becomes running under this owner with a lease and a new fencing token.
-- KEYS[1] -> the request hash (bench:{<id>}:req)
-- ARGV[1] -> owner
-- ARGV[2] -> lease expiry, unix ms
-- ARGV[3] -> now, unix ms
-- Returns: the fencing token (>= 1), or 0 when the request has ended already.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'completed' or state == 'failed' then
  return 0
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[1], 'lease', ARGV[2], 'started_at', ARGV[3])
return fence
