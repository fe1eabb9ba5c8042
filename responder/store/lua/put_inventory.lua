-- Keep the inventory facts of issued certificates (inventory/facts.py), one partition.
-- KEYS: the partition's inventory hash, then for each event the key index set of its
--       SubjectPublicKeyInfo hash (the inventory hash itself when it has none)
-- ARGV: count, then per event: serial, facts JSON, spki_sha256 ('' when none)
-- Facts given again are merged over the stored ones, so an event that only relabels
-- the owner keeps the certificate's derived fields. Returns the number written.
local inv, count = KEYS[1], tonumber(ARGV[1])
for i = 0, count - 1 do
  local serial, facts, spki = ARGV[2 + i * 3], ARGV[3 + i * 3], ARGV[4 + i * 3]
  local cur = redis.call('HGET', inv, serial)
  if cur then
    local merged = cjson.decode(cur)
    for k, v in pairs(cjson.decode(facts)) do merged[k] = v end
    facts = cjson.encode(merged)
  end
  redis.call('HSET', inv, serial, facts)
  if spki ~= '' then redis.call('SADD', KEYS[2 + i], serial) end
end
return count
