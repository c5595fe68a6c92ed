-- batch_event.lua: the outbox of a batch's events (created, final). An
-- event is due once its outbox field says pending; 'claim' takes it for
-- one publisher when it has waited at least stale_ms since it was set or
-- last taken (the creator or the finalizer publishes at once; the sweep
-- takes over what they left), 'done' records it published.
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- ARGV[1] -> 'claim' | 'done'
-- ARGV[2] -> event: 'created' | 'final'
-- ARGV[3] -> now, unix ms
-- ARGV[4] -> stale_ms (claim)
-- Returns: {'ok', batch...} (claim: taken; the batch hash) | {'no'}
local field = 'evt_' .. ARGV[2]
local v = redis.call('HMGET', KEYS[1], field, field .. '_at')
if v[1] ~= 'pending' then
  return {'no'}
end
if ARGV[1] == 'done' then
  redis.call('HSET', KEYS[1], field, 'done')
  return {'ok'}
end
local now = tonumber(ARGV[3])
if tonumber(v[2] or '0') + tonumber(ARGV[4]) > now then
  return {'no'}
end
redis.call('HSET', KEYS[1], field .. '_at', now)
return append_all({'ok'}, redis.call('HGETALL', KEYS[1]))
