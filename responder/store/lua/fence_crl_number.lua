-- Record a CRL number about to be published, if it is above every one recorded before.
-- KEYS: the issuer's and shard's number key. ARGV: the number, in decimal.
-- Returns 'ok', or the number recorded (the caller goes above it and asks again).
-- Decimal strings compare by length, then lexically: CRL numbers may pass 2^53.
local last = redis.call('GET', KEYS[1])
local n = ARGV[1]
if last and (#last > #n or (#last == #n and last >= n)) then
  return last
end
redis.call('SET', KEYS[1], n)
return 'ok'
