-- finish.lua: the lease holder ends its request: completed, failed,
-- canceled or expired. completed/failed replace a soft canceled when owner
-- and token still match and the canceled result was not published yet (a
-- request never gets two result messages); hard terminals drop the write.
-- Racing pairs (escalation): the first completed wins. A copy that
-- completes while its original is pending, in flight or failed supersedes
-- the original; a copy whose original ended otherwise (completed,
-- canceled, expired), or whose batch is final or past its deadline, ends
-- superseded itself. An original that completes
-- supersedes its copy if the copy is still pending or in flight. A copy's
-- every terminal move ends it in the batch's escalating counter once.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- KEYS[4] -> partner hash   <p>:{<tag>}:req:<partner id> (the original of a
--            copy, the copy of an original; only read when the record
--            names it)
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> owner
-- ARGV[3] -> fencing token
-- ARGV[4] -> required state: 'processing', or '*' for claimed or processing
-- ARGV[5] -> target state: completed | failed | canceled | expired
-- ARGV[6] -> '1' when the holder made no upstream call for the attempt its
--            claim counted (processing only): the attempt is taken back
-- ARGV[7] -> HTTP status (0: none)
-- ARGV[8] -> failure code ('' for none)
-- ARGV[9] -> failure message
-- ARGV[10] -> routed model ('' keeps the recorded one)
-- ARGV[11] -> result line for the outbox ('' for none; a stored one is dropped)
-- ARGV[12] -> retention, ms
-- ARGV[13] -> request id
-- ARGV[14] -> partner id (see KEYS[4])
-- Returns: {'ok', state, previous, applied, ['partner', id,] batch...}
-- (partner: the racing partner this call superseded; batch...: flat
-- HGETALL when this call finalized it) | {'lost', state} | {'illegal', state}
local now = tonumber(ARGV[1])
local target = ARGV[5]
local r = redis.call('HMGET', KEYS[1], 'state', 'owner', 'fence', 'attempt', 'published', 'escalated_from',
  'escalated_to')
local state = r[1]
if not state then
  return {'lost', ''}
end
if HARD[state] then
  return {'ok', state, state, 0}
end
local mine = r[2] == ARGV[2] and r[3] == ARGV[3]
if state == 'canceled' then
  if not mine then
    return {'lost', state}
  end
  if (target ~= 'completed' and target ~= 'failed') or r[5] == '1' then
    -- only a real result replaces the cancel, and only before the cancel's
    -- result message went out
    return {'ok', state, state, 0}
  end
elseif not mine then
  return {'lost', state}
elseif not is_inflight(state) then
  return {'lost', state}
elseif ARGV[4] ~= '*' and state ~= ARGV[4] then
  return {'illegal', state}
end

local attempt = tonumber(r[4] or '0')
if ARGV[6] == '1' and state == 'processing' then
  attempt = math.max(attempt - 1, 0)
end
local is_copy = (r[6] or '') ~= '' and r[6] == ARGV[14]
local partner = ''
if target == 'completed' and is_copy then
  local ost = redis.call('HGET', KEYS[4], 'state')
  local b = batch_load(KEYS[2])
  local why = nil
  if ost ~= 'pending' and ost ~= 'failed' and not is_inflight(ost) then
    why = 'the original request ended first (' .. tostring(ost) .. ')'
  elseif b == nil or (b.expires_at > 0 and now >= b.expires_at)
      or (redis.call('HGET', KEYS[2], 'finalized_at') or '') ~= '' then
    -- past the deadline the batch stops waiting for its copies and may be
    -- final already: its counters and its result lines stay as they are
    why = 'the batch was final or past its deadline first'
  end
  if why then
    -- the copy loses and publishes nothing
    record_end(KEYS[1], 'superseded', 'superseded', why, now,
      ARGV[12], {attempt = attempt, status = ARGV[7], routed_model = ARGV[10], fields = {'superseded_by', ARGV[14]}})
    local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], batch_load(KEYS[2]), ARGV[13], state, 'superseded', now, ARGV[12])
    return append_all({'ok', 'superseded', state, 1}, fin)
  end
end
local pfin = nil
if target == 'completed' and (is_copy or ((r[7] or '') ~= '' and r[7] == ARGV[14])) then
  local superseded
  superseded, pfin = supersede_partner(KEYS[4], KEYS[2], KEYS[3], ARGV[14], ARGV[13], now, ARGV[12])
  if superseded then
    partner = ARGV[14]
  end
end
-- the holder's own write: owner and token stay
record_end(KEYS[1], target, ARGV[8], ARGV[9], now, ARGV[12], {
  attempt = attempt, status = ARGV[7], routed_model = ARGV[10], outbox = ARGV[11],
})
local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], batch_load(KEYS[2]), ARGV[13], state, target, now, ARGV[12])
if fin == nil and pfin ~= nil then
  -- the partner's end finalized the batch: answer with the batch as this
  -- call left it
  fin = redis.call('HGETALL', KEYS[2])
end
local out = {'ok', target, state, 1}
if partner ~= '' then
  append_all(out, {'partner', partner})
end
return append_all(out, fin)
