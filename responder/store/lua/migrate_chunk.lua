-- Move one chunk of a layout-1 partition to layout 2: copy answers still valid to their
-- own keys and mark every listed serial due now (the pre-signer re-signs each soon, so
-- no re-sign time has to be guessed here). KEYS: legacy answers hash, due, then each
-- serial's answer key. ARGV: serial fields, aligned with the answer keys.
local now = tonumber(redis.call('TIME')[1])
for i = 1, #ARGV do
  local blob = redis.call('HGET', KEYS[1], ARGV[i])
  if blob and #blob >= 16 then
    local next_update = 0  -- bytes 9-16 of the header, big-endian
    for k = 9, 16 do next_update = next_update * 256 + string.byte(blob, k) end
    if next_update > now then
      redis.call('SET', KEYS[2 + i], blob, 'EXAT', next_update)
    end
  end
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
end
return #ARGV
