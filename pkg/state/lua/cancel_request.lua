-- cancel_request.lua: the control plane cancels one request. pending,
-- claimed and processing become canceled (soft: the holder keeps owner and
-- token, so its later Complete/Fail still wins); terminals are left alone.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> request id
-- ARGV[3] -> batch id
-- ARGV[4] -> retention, ms
-- Returns: {'ok', state, previous, applied, batch...} | {'not_found'}
local now = tonumber(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'state')
local state = cur or 'pending'
if state == 'canceled' or HARD[state] then
  return {'ok', state, state, 0}
end
local b = batch_load(KEYS[2])
if cur and redis.call('HGET', KEYS[1], 'counted') == '0' then
  b = nil -- not one of the batch's requests: no counter to move
end
if not cur then
  local refusal = unseen_refusal(b)
  if refusal then
    return refusal
  end
  record_init(KEYS[1], ARGV[2], ARGV[3], '', '', 0, now, batch_admit(KEYS[2], b))
end
-- soft: owner and token stay, so the holder's real result can replace it
record_end(KEYS[1], 'canceled', 'request_cancelled', 'the request was cancelled', now, ARGV[4])
local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], b, ARGV[2], state, 'canceled', now, ARGV[4])
return append_all({'ok', 'canceled', state, 1}, fin)
