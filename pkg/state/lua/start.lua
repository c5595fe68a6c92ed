-- start.lua: claimed → processing for the lease holder; renews the lease.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch (unused; keeps the KEYS shape)
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> owner
-- ARGV[3] -> fencing token
-- ARGV[4] -> lease ttl, ms
-- ARGV[5] -> request id
-- Returns: {'ok', lease_until} | {'lost', state} | {'illegal', state}
local now = tonumber(ARGV[1])
local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'fence')
if not r[1] then
  return {'lost', ''}
end
if r[2] ~= ARGV[2] or r[3] ~= ARGV[3] then
  return {'lost', r[1]}
end
if r[1] ~= 'claimed' then
  if is_inflight(r[1]) then
    return {'illegal', r[1]}
  end
  return {'lost', r[1]}
end
local until_ms = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'processing', 'started_at', now, 'lease_until', until_ms, 'updated_at', now)
redis.call('ZADD', KEYS[3], 'XX', until_ms, ARGV[5])
return {'ok', until_ms}
