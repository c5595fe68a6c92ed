-- mark_published.lua: the request's result is published: drop the outbox,
-- set published. A missing record (expired by retention) is left alone.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- Returns: 1 when the record exists, else 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], 'outbox')
redis.call('HSET', KEYS[1], 'published', 1)
return 1
