-- mark_published.lua: the request's result is published: drop the outbox,
-- set published, and count the result in its batch the first time (a
-- request its batch counts; a soft cancel replaced by a real result is
-- counted once). The batch turns final when that was the last result it
-- waited for (batch_final). A missing record (expired by retention) is
-- left alone. A superseded request's mark counts nothing: its result is
-- its winner's. A completed racing copy's line counts as its original's
-- result, once per original (a failure line of the original counted before
-- stopped counting when the copy superseded it).
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases (a request the sweep
--            ended waits there for this mark)
-- KEYS[4] -> the original's hash when the request is a racing copy
--            (escalation; only read when the record names it)
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> retention, ms
-- ARGV[3] -> request id
-- Returns: {'ok', batch...} (batch...: flat HGETALL when this call turned
-- the batch final) | {'gone'}
local r = redis.call('HMGET', KEYS[1], 'state', 'counted', 'pub_counted', 'escalated_from')
if not r[1] then
  return {'gone'}
end
redis.call('HDEL', KEYS[1], 'outbox')
redis.call('HSET', KEYS[1], 'published', 1)
redis.call('ZREM', KEYS[3], ARGV[3])
if r[1] == 'completed' and (r[4] or '') ~= '' then
  local o = redis.call('HMGET', KEYS[4], 'escalated_to', 'counted', 'pub_counted')
  if o[1] ~= ARGV[3] or o[2] ~= '1' or o[3] == '1' or redis.call('EXISTS', KEYS[2]) == 0 then
    return {'ok'}
  end
  redis.call('HSET', KEYS[4], 'pub_counted', 1)
  redis.call('HINCRBY', KEYS[2], 'published', 1)
  return append_all({'ok'}, batch_final(KEYS[2], tonumber(ARGV[1]), ARGV[2], false))
end
-- a superseded request's result is its winner's: the batch expects none
if r[1] == 'superseded' or r[2] ~= '1' or r[3] == '1' or redis.call('EXISTS', KEYS[2]) == 0 then
  return {'ok'}
end
redis.call('HSET', KEYS[1], 'pub_counted', 1)
redis.call('HINCRBY', KEYS[2], 'published', 1)
return append_all({'ok'}, batch_final(KEYS[2], tonumber(ARGV[1]), ARGV[2], false))
