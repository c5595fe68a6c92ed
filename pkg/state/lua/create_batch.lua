-- create_batch.lua: create a batch record, or confirm that one with the
-- same contents exists. A sealed batch (total >= 1) starts with pending =
-- total; an open one (total 0) counts its requests as they arrive
-- (batch_admit) until a seal. A new record expires at expires_at +
-- retention (finalization shortens that to retention from then). The
-- created event's outbox is set.
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- ARGV[1] -> batch id
-- ARGV[2] -> completion window
-- ARGV[3] -> endpoint
-- ARGV[4] -> metadata, canonical JSON object
-- ARGV[5] -> created_at, unix ms
-- ARGV[6] -> expires_at, unix ms
-- ARGV[7] -> total (0: open)
-- ARGV[8] -> now, unix ms
-- ARGV[9] -> retention, ms
-- Returns: {'created', batch...} | {'exists', batch...} |
-- {'conflict', field, stored, given}
local v = redis.call('HMGET', KEYS[1], 'id', 'completion_window', 'endpoint', 'metadata', 'total_given', 'total')
if v[1] or v[6] then
  -- the identity: everything given but the times
  local given = {ARGV[2], ARGV[3], ARGV[4], ARGV[7]}
  local names = {'completion_window', 'endpoint', 'metadata', 'total'}
  local stored = {v[2] or '', v[3] or '', v[4] or '{}', v[5] or v[6] or ''}
  for i = 1, 4 do
    if stored[i] ~= given[i] then
      return {'conflict', names[i], stored[i], given[i]}
    end
  end
  return append_all({'exists'}, redis.call('HGETALL', KEYS[1]))
end
local sealed = 1
if tonumber(ARGV[7]) == 0 then
  sealed = 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'completion_window', ARGV[2], 'endpoint', ARGV[3],
  'metadata', ARGV[4], 'created_at', ARGV[5], 'expires_at', ARGV[6], 'total_given', ARGV[7],
  'total', ARGV[7], 'sealed', sealed, 'seen', 0, 'pending', ARGV[7], 'in_progress', 0, 'completed', 0,
  'failed', 0, 'canceled', 0, 'superseded', 0, 'expired', 0, 'published', 0, 'status', 'validating',
  'evt_created', 'pending', 'evt_created_at', ARGV[8])
redis.call('PEXPIRE', KEYS[1], live_ttl(ARGV[6], tonumber(ARGV[8]), ARGV[9]))
return append_all({'created'}, redis.call('HGETALL', KEYS[1]))
