-- Apply a batch of already-validated events to one partition.
-- KEYS: certs, revoked, due, feed, legacy answers (one hash tag), then each event's
--       answer key. The legacy (layout 1) answers hash is deleted from too, so that a
--       migration copying it cannot bring back an answer a revocation removed.
-- ARGV: issuer, now, feed_maxlen, count, then per event:
--       type, serial, not_after, revoked_at, reason, invalidity_date, crl_shard
--       then, with the propagation ledger: its retention in seconds
-- With the ledger, KEYS go on after the answer keys: the ledger's index (sorted set,
-- serial by acknowledgement time), then each event's ledger key. A revocation starts
-- the certificate's ledger (propagation/ledger.py) here, atomically with the change,
-- so no acknowledged revocation can lack its "acknowledged at".
-- Returns a flat list: code, message per event; code is applied/unchanged/rejected.
--
-- Every change that alters what OCSP says deletes the stored answer and marks the
-- serial due now (score 0) in the due index, so the pre-signer finds it without reading
-- the partition; a new certificate is marked due the same way.
local certs, revoked, due, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local issuer, now, maxlen, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local NO_EXPIRY = 253402300799
local KEY_COMPROMISE, HOLD = '1', '6'
local out = {}

local function split(s)
  local t = {}
  for f in string.gmatch(s .. '|', '([^|]*)|') do t[#t + 1] = f end
  return t
end

-- The whole script runs at one instant; its changes go out as one notification, a line
-- each, so a batch of thousands costs subscribers one message instead of thousands.
local t = redis.call('TIME')
local ms = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local notes = {}

local function changed(serial, status, ver)
  redis.call('XADD', feed, 'MAXLEN', '~', maxlen, '*', 's', serial, 't', status, 'v', ver)
  notes[#notes + 1] = issuer .. ' ' .. serial .. ' ' .. status .. ' ' .. ver .. ' ' .. ms
end

local ledger_index = KEYS[6 + count]
local ledger_ttl = ARGV[5 + count * 7]

local ledgers = 0

local function ledger(i, serial, ver, rat, reason)
  if not ledger_index then return end
  local key = KEYS[7 + count + i]
  -- an earlier revocation's steps (a hold lifted since); EXISTS first, since a DEL
  -- is written to the AOF even when there is nothing to delete
  if redis.call('EXISTS', key) == 1 then redis.call('DEL', key) end
  redis.call('HSET', key, 'ack', ms, 'ver', ver, 'revoked_at', rat, 'reason', reason)
  redis.call('EXPIRE', key, ledger_ttl)
  redis.call('ZADD', ledger_index, ms, serial)
  ledgers = ledgers + 1
end

local function score(not_after)
  if not_after == '' then return NO_EXPIRY end
  return not_after
end

local function resign(answer, serial)
  redis.call('DEL', answer)
  redis.call('HDEL', KEYS[5], serial)
  redis.call('ZADD', due, 0, serial)
end

for i = 0, count - 1 do
  local b = 5 + i * 7
  local answer = KEYS[6 + i]
  local typ, serial, na, rat, reason, inv, shard =
    ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local cur = redis.call('HGET', certs, serial)
  local r = cur and split(cur)
  local code, msg = 'applied', ''

  if typ == 'issued' then
    if not r then
      redis.call('HSET', certs, serial, table.concat({'g', na, '1', now, shard}, '|'))
      redis.call('ZADD', due, 0, serial)
      changed(serial, 'good', '1')
      msg = 'issued'
    elseif r[2] == '' then
      -- revoked before its issuance was reported (perhaps on hold, lifted since):
      -- record not_after now; a revoked entry's CRL retention starts counting
      r[2] = na
      r[3] = tostring(tonumber(r[3]) + 1)
      r[4] = now
      redis.call('HSET', certs, serial, table.concat(r, '|'))
      if r[1] == 'r' then
        redis.call('ZADD', revoked, score(na), serial)
        changed(serial, 'revoked', r[3])
        msg = 'not_after recorded for a revoked certificate'
      else
        -- (found by the domain differential test: this used to list a good
        -- certificate on the revoked index, hence on CRLs)
        changed(serial, 'good', r[3])
        msg = 'not_after recorded'
      end
    elseif r[2] ~= na then
      code, msg = 'rejected', 'not_after: already issued with not_after ' .. r[2]
    else
      code = 'unchanged'
      if r[1] == 'r' then msg = 'already revoked' else msg = 'already issued' end
    end

  elseif typ == 'revoked' then
    if not r or r[1] == 'g' then
      local ver, keep_na, keep_shard = '1', na, shard
      if r then
        ver = tostring(tonumber(r[3]) + 1)
        if r[2] ~= '' then keep_na = r[2] end
        keep_shard = r[5]
      end
      redis.call('HSET', certs, serial,
        table.concat({'r', keep_na, ver, now, keep_shard, rat, reason, inv}, '|'))
      redis.call('ZADD', revoked, score(keep_na), serial)
      resign(answer, serial)
      changed(serial, 'revoked', ver)
      ledger(i, serial, ver, rat, reason)
      msg = 'revoked'
    elseif r[7] == reason and r[6] == rat and r[8] == inv then
      code, msg = 'unchanged', 'already revoked'
    elseif (reason == KEY_COMPROMISE and r[7] ~= KEY_COMPROMISE)
        or (r[7] == HOLD and reason ~= HOLD) then
      -- re-revocation for key compromise (revocation date may move earlier), or a hold made final
      local ver = tostring(tonumber(r[3]) + 1)
      local new_rat = rat
      if reason == KEY_COMPROMISE and tonumber(r[6]) < tonumber(rat) then new_rat = r[6] end
      local new_inv = inv
      if inv == '' then new_inv = r[8] end
      if r[2] == '' and na ~= '' then r[2] = na end
      redis.call('HSET', certs, serial,
        table.concat({'r', r[2], ver, now, r[5], new_rat, reason, new_inv}, '|'))
      redis.call('ZADD', revoked, score(r[2]), serial)
      resign(answer, serial)
      changed(serial, 'revoked', ver)
      if reason == KEY_COMPROMISE then msg = 'reason changed to keyCompromise'
      else msg = 'hold made permanent' end
    else
      code = 'rejected'
      msg = 'reason: already revoked at ' .. r[6] .. ' with reason code ' .. r[7] ..
        '; only a change to keyCompromise, or from certificateHold, is allowed'
    end

  elseif typ == 'unrevoked' then
    if not r then
      code, msg = 'rejected', 'serial: no record of this certificate'
    elseif r[1] == 'g' then
      code, msg = 'unchanged', 'not revoked'
    elseif r[7] ~= HOLD then
      code = 'rejected'
      msg = 'type: only a certificateHold revocation can be lifted (reason code ' .. r[7] .. ')'
    else
      local ver = tostring(tonumber(r[3]) + 1)
      redis.call('HSET', certs, serial, table.concat({'g', r[2], ver, now, r[5]}, '|'))
      redis.call('ZREM', revoked, serial)
      resign(answer, serial)
      changed(serial, 'good', ver)
      msg = 'hold lifted'
    end
  else
    code, msg = 'rejected', 'type: unknown event type'
  end
  out[#out + 1] = code
  out[#out + 1] = msg
end
if ledgers > 0 then
  -- index entries past the retention leave as new ones come (their keys expire)
  redis.call('ZREMRANGEBYSCORE', ledger_index, '-inf',
    '(' .. tostring(tonumber(ms) - tonumber(ledger_ttl) * 1000))
end
if #notes > 0 then redis.call('PUBLISH', 'rv:changes', table.concat(notes, '\n')) end
return out
