-- Record one step of revocations' propagation (propagation/ledger.py), first time only.
-- KEYS: ledger keys of one partition (one hash tag). ARGV: step name, then a value per
-- key. A key that does not exist is left alone: no ledger was started for that serial
-- (not a revocation, or one older than the retention), and none is made up here.
-- Returns, per key, the revocation's acknowledgement time when the step was recorded
-- now, else 0 (so the caller measures each step once).
local out = {}
for i, key in ipairs(KEYS) do
  local ack = 0
  if redis.call('EXISTS', key) == 1 and redis.call('HSETNX', key, ARGV[1], ARGV[i + 1]) == 1 then
    ack = tonumber(redis.call('HGET', key, 'ack')) or 0
  end
  out[#out + 1] = ack
end
return out
