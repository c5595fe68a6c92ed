-- budget_admit.lua: reserve one call's cost from a key × model's budgets.
-- The same arithmetic as ratelimit.Bucket: per budget a token bucket of up
-- to a minute's limit, refilled continuously; an admission takes its whole
-- cost, possibly below zero (a reservation due when the refill has paid it
-- back). Hand-written rather than redis_rate's GCRA: a call reserves
-- several amounts at once (requests and tokens), and its token reservation
-- is corrected after the call (budget_settle.lua).
-- KEYS[1] -> budget hash   <p>:{rl:<budget>|<model>}
--            ts      last refill, unix ms
--            hold    no admission before, unix ms
--            <d>:lim limit learned from headers, <d>:lvl level, for d in r t i o
--            (requests, tokens, input tokens, output tokens)
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> longest wait, ms: a call that would wait longer reserves nothing
-- ARGV[3] -> key ttl, ms
-- ARGV[4..7]  -> configured limits per minute (r t i o); 0 = none
-- ARGV[8..11] -> the call's cost (r t i o)
-- Returns: {1 reserved | 0 not, wait ms, effective limit r, t, i, o (0 = none)}
local dims = {'r', 't', 'i', 'o'}
local now = tonumber(ARGV[1])
local maxwait = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'ts', 'hold', 'r:lim', 'r:lvl', 't:lim', 't:lvl', 'i:lim', 'i:lvl', 'o:lim', 'o:lvl')
local ts = tonumber(h[1]) or now
local elapsed = math.max(0, now - ts)
local hold = tonumber(h[2]) or 0
local lims, lvls, costs = {}, {}, {}
local wait = 0
for d = 1, 4 do
  local cfg = tonumber(ARGV[3 + d])
  local learned = tonumber(h[1 + 2 * d]) or 0
  local lim = cfg
  if learned > 0 and (cfg <= 0 or learned < cfg) then lim = learned end
  lims[d] = math.max(lim, 0)
  if lim > 0 then
    local lvl = tonumber(h[2 + 2 * d]) or lim
    lvl = math.min(lim, lvl + elapsed * lim / 60000)
    lvls[d] = lvl
    costs[d] = math.min(tonumber(ARGV[7 + d]), lim)
    if lvl < costs[d] then
      wait = math.max(wait, math.ceil((costs[d] - lvl) * 60000 / lim))
    end
  end
end
if hold > now then
  return {0, hold - now, lims[1], lims[2], lims[3], lims[4]}
end
if wait > maxwait then
  return {0, wait, lims[1], lims[2], lims[3], lims[4]}
end
local set = {'ts', now}
for d = 1, 4 do
  if lims[d] > 0 then
    set[#set + 1] = dims[d] .. ':lvl'
    set[#set + 1] = tostring(lvls[d] - costs[d])
  end
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, wait, lims[1], lims[2], lims[3], lims[4]}
