-- Store pre-signed answers of one partition, each only if its record still has the
-- version it was signed from (a revocation meanwhile deletes the answer and bumps the
-- version, so a racing signer cannot resurrect `good`). Each answer expires at its
-- nextUpdate: past it, nothing may serve it. Its re-sign time goes into the due index.
-- KEYS: certs, due, then each answer's key.
-- ARGV: n, then serial, version, blob, next_update, due_at per answer. Returns stored count.
local stored = 0
local now = tonumber(redis.call('TIME')[1])
for i = 0, tonumber(ARGV[1]) - 1 do
  local b = 2 + i * 5
  local serial, version, blob = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local expires, due_at = tonumber(ARGV[b + 3]), ARGV[b + 4]
  local cur = redis.call('HGET', KEYS[1], serial)
  if cur and expires > now and string.match(cur, '^[gr]|[^|]*|([^|]*)|') == version then
    redis.call('SET', KEYS[3 + i], blob, 'EXAT', expires)
    redis.call('ZADD', KEYS[2], due_at, serial)
    stored = stored + 1
  end
end
return stored
