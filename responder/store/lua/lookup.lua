-- A data plane cache miss: pre-signed answers and records of one partition's serials in
-- one round trip instead of two. KEYS: certs, then each serial's answer key.
-- ARGV: serial fields, aligned with the answer keys.
-- Returns {answers, records}, each aligned with ARGV (false where missing).
local answers = {}
for i = 2, #KEYS do answers[#answers + 1] = KEYS[i] end
return {redis.call('MGET', unpack(answers)), redis.call('HMGET', KEYS[1], unpack(ARGV))}
