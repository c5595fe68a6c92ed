-- supersede.lua: a racing copy of the request (escalation) completed first.
-- pending, claimed, processing and failed become superseded: the fence is
-- bumped and the owner cleared, so the loser's holder can write nothing
-- more, and the batch counters move to superseded in the same step. A
-- failed original overturned by its copy moves too, even when its batch
-- already finalized (the counters stay exact; the status stays), and keeps
-- the result line and published flag its failure stored. finish.lua
-- supersedes the loser of a racing pair itself (supersede_partner); this
-- is the same move for a caller that has only the two ids. completed,
-- canceled, superseded and expired are left alone.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> request id
-- ARGV[3] -> batch id
-- ARGV[4] -> id of the winning copy
-- ARGV[5] -> retention, ms
-- Returns: {'ok', state, previous, applied, batch...} | {'not_found'}
local now = tonumber(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'state')
local state = cur or 'pending'
if state ~= 'pending' and state ~= 'claimed' and state ~= 'processing' and state ~= 'failed' then
  return {'ok', state, state, 0}
end
local b = batch_load(KEYS[2])
if cur and redis.call('HGET', KEYS[1], 'counted') == '0' then
  b = nil -- not one of the batch's requests: no counter to move
end
if b ~= nil and redis.call('HGET', KEYS[1], 'pub_counted') == '1' then
  -- a published failure no longer counts as the request's result: its
  -- winning copy's line does (mark_published)
  redis.call('HINCRBY', KEYS[2], 'published', -1)
  redis.call('HSET', KEYS[1], 'pub_counted', 0)
end
if not cur then
  local refusal = unseen_refusal(b)
  if refusal then
    return refusal
  end
  record_init(KEYS[1], ARGV[2], ARGV[3], '', '', 0, now, batch_admit(KEYS[2], b))
end
-- keep_result: a failed original keeps the result line and published flag
-- its failure stored
record_end(KEYS[1], 'superseded', 'superseded', 'a racing copy of the request completed first', now, ARGV[5], {
  fence = true, keep_result = true, fields = {'superseded_by', ARGV[4]},
})
local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], b, ARGV[2], state, 'superseded', now, ARGV[5])
return append_all({'ok', 'superseded', state, 1}, fin)
