-- budget_settle.lua: correct a call's reservation and record what its
-- response's headers said about the key × model's budgets.
-- KEYS[1] -> budget hash   <p>:{rl:<budget>|<model>} (fields as in budget_admit.lua)
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> hold until, unix ms (0 = none): no admission before it
-- ARGV[3] -> key ttl, ms
-- ARGV[4 + 4(d-1) .. 7 + 4(d-1)] for d = r t i o ->
--            configured limit (0 none), refund (may be negative: more was
--            used than reserved), learned limit (-1 unknown), remaining
--            count (-1 unknown)
-- Returns: {1}
local dims = {'r', 't', 'i', 'o'}
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'ts', 'r:lim', 'r:lvl', 't:lim', 't:lvl', 'i:lim', 'i:lvl', 'o:lim', 'o:lvl')
local ts = tonumber(h[1]) or now
local elapsed = math.max(0, now - ts)
local set = {'ts', math.max(ts, now)}
for d = 1, 4 do
  local a = 4 + 4 * (d - 1)
  local cfg, refund = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local learned, remaining = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local old = tonumber(h[2 * d]) or 0
  if learned > 0 then
    old = learned
    set[#set + 1] = dims[d] .. ':lim'
    set[#set + 1] = learned
  end
  local lim = cfg
  if old > 0 and (cfg <= 0 or old < cfg) then lim = old end
  if lim > 0 then
    local lvl = tonumber(h[1 + 2 * d]) or lim
    lvl = math.min(lim, lvl + elapsed * lim / 60000 + refund)
    -- The upstream's count is the truth when it is lower than ours.
    if remaining >= 0 and remaining < lvl then lvl = remaining end
    set[#set + 1] = dims[d] .. ':lvl'
    set[#set + 1] = tostring(lvl)
  end
end
local hold = tonumber(ARGV[2])
if hold > now then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'hold')) or 0
  if hold > cur then
    set[#set + 1] = 'hold'
    set[#set + 1] = hold
  end
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
