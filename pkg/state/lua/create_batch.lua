-- create_batch.lua: create a batch record with pending = total, or confirm
-- an identical one exists. A new record expires at expires_at + retention
-- (finalization shortens that to retention from then).
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- ARGV[1] -> spec: canonical encoding of the creation contents
-- ARGV[2] -> batch id
-- ARGV[3] -> completion window
-- ARGV[4] -> endpoint
-- ARGV[5] -> metadata, JSON object
-- ARGV[6] -> created_at, unix ms
-- ARGV[7] -> expires_at, unix ms
-- ARGV[8] -> total
-- ARGV[9] -> now, unix ms
-- ARGV[10] -> retention, ms
-- Returns: {'created', batch...} | {'exists', batch...} | {'conflict'}
local spec = redis.call('HGET', KEYS[1], 'spec')
if spec then
  if spec ~= ARGV[1] then
    return {'conflict'}
  end
  return append_all({'exists'}, redis.call('HGETALL', KEYS[1]))
end
redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'id', ARGV[2], 'completion_window', ARGV[3],
  'endpoint', ARGV[4], 'metadata', ARGV[5], 'created_at', ARGV[6], 'expires_at', ARGV[7],
  'total', ARGV[8], 'pending', ARGV[8], 'in_progress', 0, 'completed', 0, 'failed', 0,
  'canceled', 0, 'superseded', 0, 'expired', 0)
redis.call('PEXPIRE', KEYS[1], live_ttl(ARGV[7], tonumber(ARGV[9]), ARGV[10]))
return append_all({'created'}, redis.call('HGETALL', KEYS[1]))
