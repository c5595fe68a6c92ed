-- finish_batch.lua: turn a batch whose requests have all ended final now,
-- whatever results are still missing (the sweep, after the finalizing
-- grace). See batch_final.
-- KEYS[1] -> batch hash     <p>:{<batch>}:batch
-- ARGV[1] -> now, unix ms
-- ARGV[2] -> retention, ms
-- Returns: {'final', batch...} | {'no'}
local fin = batch_final(KEYS[1], tonumber(ARGV[1]), ARGV[2], true)
if fin == nil then
  return {'no'}
end
return append_all({'final'}, fin)
