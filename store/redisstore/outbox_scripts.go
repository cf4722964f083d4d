package redisstore

import "github.com/redis/go-redis/v9"

// The outbox's scripts. Every key a script touches is one client's: the
// base key <prefix>ob:{<clientId>}: comes in ARGV[1] and the scripts append
// the rest (see outbox.go for the layout), so one script never touches two
// hash tags. As for the ingress scripts, a script that runs twice (go-redis
// resends a command whose connection broke) answers what the first run
// answered: writes recognize their own write id, leases and claims their
// own token.

// Results of applyScript.
const (
	applyDone      = 0 // written now
	applyAlready   = 1 // written by an earlier run of the same call
	applyLeaseLost = 2
	applyConflict  = 3 // a record read has been written since
)

// applyScript writes one outboxplan.Change, if nothing it read has been
// written since.
//
//	ARGV[1] base key; ARGV[2] write id; ARGV[3] primary record (the suffix
//	whose 'w' tells that this call already ran; '' none); ARGV[4] lease
//	(suffix; '' none) and ARGV[5] its token; ARGV[6] now, epoch ms;
//	then n, n × (record suffix, write id read, '' for none): the checks;
//	then n, n × (record suffix, encoding, '' to delete): the writes;
//	then n, n × (op, key suffix, member, score): index and expiry changes,
//	op 'za' ZADD, 'zr' ZREM, 'ea' PEXPIREAT (score), 'ep' PERSIST, 'd' DEL.
//
// Records are hashes: v the encoding, w the write id of the last write.
// Final entries are trimmed from the by-state sorted sets once their score
// (the end of their retention) has passed, as their keys expire.
var applyScript = redis.NewScript(`
local base, wid = ARGV[1], ARGV[2]
if ARGV[3] ~= '' and redis.call('HGET', base .. ARGV[3], 'w') == wid then return 1 end
if ARGV[4] ~= '' and redis.call('GET', base .. ARGV[4]) ~= ARGV[5] then return 2 end
local i = 7
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if (redis.call('HGET', base .. ARGV[i], 'w') or '') ~= ARGV[i + 1] then return 3 end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local k = base .. ARGV[i]
  if ARGV[i + 1] == '' then
    redis.call('DEL', k)
  else
    redis.call('HSET', k, 'v', ARGV[i + 1], 'w', wid)
  end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local op, k = ARGV[i], base .. ARGV[i + 1]
  if op == 'za' then
    redis.call('ZADD', k, ARGV[i + 3], ARGV[i + 2])
  elseif op == 'zr' then
    redis.call('ZREM', k, ARGV[i + 2])
  elseif op == 'ea' then
    redis.call('PEXPIREAT', k, ARGV[i + 3])
  elseif op == 'ep' then
    redis.call('PERSIST', k)
  elseif op == 'd' then
    redis.call('DEL', k)
  end
  i = i + 4
end
for _, s in ipairs({'succeeded', 'failed', 'expired'}) do
  redis.call('ZREMRANGEBYSCORE', base .. 'st:' .. s, '-inf', ARGV[6])
end
return 0
`)

// leaseScript: KEYS[1] lease key; ARGV token, ttl ms. SET NX PX, and the
// holder's own token takes it again (renewed), which plain SET NX cannot
// tell on a retry.
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// renewScript: KEYS[1] lease key; ARGV token, ttl ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// Releasing a lease is unlockScript's compare-and-delete.

// dueScript: KEYS[1] the client's due set; ARGV base, due score, limit,
// scan bound. Returns the due lanes nobody leases, and the next due score
// after now (false if none).
var dueScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local out, limit = {}, tonumber(ARGV[3])
for _, m in ipairs(ids) do
  if #out >= limit then break end
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. m) == 0 then out[#out + 1] = m end
end
local nx = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'LIMIT', 0, 1, 'WITHSCORES')
return {out, nx[2] or false}
`)

// claimCallbacksScript: KEYS[1] the client's callback set; ARGV base, due
// score, limit, scan bound, claim token, lease ms. A claim is a key with
// PX: taken if free, or if it is this call's own (a retried run).
var claimCallbacksScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local out, limit = {}, tonumber(ARGV[3])
for _, m in ipairs(ids) do
  if #out >= limit then break end
  local k = ARGV[1] .. 'cbc:' .. m
  local v = redis.call('GET', k)
  if not v then
    redis.call('SET', k, ARGV[5], 'PX', ARGV[6])
    out[#out + 1] = m
  elseif v == ARGV[5] then
    out[#out + 1] = m
  end
end
return out
`)

// laneScript: ARGV base, lane suffix, the lane's write id as read, then
// the requestIds of its queue. Returns the entries' encodings read at one
// instant, or false if the lane was written since it was read.
var laneScript = redis.NewScript(`
if (redis.call('HGET', ARGV[1] .. ARGV[2], 'w') or '') ~= ARGV[3] then return false end
local out = {}
for i = 4, #ARGV do
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'e:' .. ARGV[i], 'v') or ''
end
return out
`)
