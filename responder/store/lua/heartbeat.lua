-- Say this process is alive in a group of processes sharing work, and count the group.
-- KEYS: the group's sorted set (member: owner, score: when its word expires, store clock).
-- ARGV: owner, ttl_ms. Returns how many members are alive, the caller included.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
