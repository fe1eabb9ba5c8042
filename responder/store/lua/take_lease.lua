-- Take a lease or extend the one we hold. KEYS: the lease. ARGV: owner, ttl_ms.
-- Returns 1 when the caller holds the lease for ttl_ms from now, 0 when another does.
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
