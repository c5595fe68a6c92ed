-- force_fail.lua: fail a request that is not hard-terminal regardless of
-- any lease (poison message), bumping the fence so every holder's later
-- write is rejected. A request without a record that its sealed batch
-- cannot count (batch_admit) is not one of the batch's: its failure is
-- recorded without touching the counters.
-- KEYS[1] -> request hash   <p>:{<tag>}:req:<id>
-- KEYS[2] -> batch hash     <p>:{<tag>}:batch
-- KEYS[3] -> lease index    <p>:{<tag>}:leases
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> request id
-- ARGV[3] -> batch id
-- ARGV[4] -> model
-- ARGV[5] -> custom id
-- ARGV[6] -> expires_at, unix ms
-- ARGV[7] -> HTTP status (0: none)
-- ARGV[8] -> failure code
-- ARGV[9] -> failure message
-- ARGV[10] -> routed model ('' keeps the recorded one)
-- ARGV[11] -> result line for the outbox ('' for none; a stored one is dropped)
-- ARGV[12] -> retention, ms
-- Returns: {'ok', state, previous, applied, batch...}
local now = tonumber(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'state')
local state = cur or 'pending'
if HARD[state] then
  return {'ok', state, state, 0}
end
local b = batch_load(KEYS[2])
if cur and redis.call('HGET', KEYS[1], 'counted') == '0' then
  b = nil -- not one of the batch's requests: no counter to move
end
if not cur then
  local counted = batch_admit(KEYS[2], b)
  if not counted then
    b = nil -- not one of the batch's requests: no counter to move
  end
  record_init(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], now, counted)
end
record_end(KEYS[1], 'failed', ARGV[8], ARGV[9], now, ARGV[12], {
  status = ARGV[7], routed_model = ARGV[10], outbox = ARGV[11], fence = true,
})
local fin = batch_end(KEYS[1], KEYS[2], KEYS[3], b, ARGV[2], state, 'failed', now, ARGV[12])
return append_all({'ok', 'failed', state, 1}, fin)
