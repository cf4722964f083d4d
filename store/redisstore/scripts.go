package redisstore

import "github.com/redis/go-redis/v9"

// go-redis retries a command whose connection broke (EOF, reset) without
// knowing whether the server ran it, so every script must give the same
// answer when run twice with the same token: a claim, finish, commit or
// lock that finds its own token already in place reports success instead
// of InFlight / ErrNotOwner / a lock wait.

// Claim script results.
const (
	claimNew      = 1
	claimInFlight = 2
	claimDone     = 3
	claimMismatch = 4
)

// claimScript: KEYS[1] request key; ARGV hash, token, lease ms.
// An expired claim needs no branch: its key has vanished with its PX. A
// live claim is in flight whatever its body: only a done record makes a
// body final (mismatch).
//
// With KEYS[2] lock key and KEYS[3] order key, and ARGV[4] lock token
// (ClaimOrder), a request it claims (or finds claimed by token) also has
// its order locked if the lock is free or already the lock token's, and
// the order read: {1, 1, order} ({1, 1} if there is none), or {1, 0} if
// another holds the lock. The lock is SET PX lease, as lockScript sets it.
var claimScript = redis.NewScript(`
local rec = redis.call('HMGET', KEYS[1], 'h', 'd', 't', 'r')
if not rec[1] then
  redis.call('HSET', KEYS[1], 'h', ARGV[1], 'd', '0', 't', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif rec[2] == '1' then
  if rec[1] ~= ARGV[1] then return {4} end
  return {3, rec[4]}
elseif rec[3] ~= ARGV[2] then
  return {2}
end
if #KEYS < 3 then return {1} end
local v = redis.call('GET', KEYS[2])
if not v then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
elseif v ~= ARGV[4] then
  return {1, 0}
end
local o = redis.call('HGET', KEYS[3], 'o')
if not o then return {1, 1} end
return {1, 1, o}
`)

// releaseScript: KEYS[1] request key; ARGV token. A done record is never
// dropped: it belongs to the replay cache, not to the claim.
var releaseScript = redis.NewScript(`
local rec = redis.call('HMGET', KEYS[1], 'd', 't')
if rec[1] == '0' and rec[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// finishScript: KEYS[1] request key; ARGV token, reply, ttl ms.
// Returns 1 when the reply is stored (or already was, by this token).
// With KEYS[2] lock key and ARGV[4] lock token (FinishUnlock), it then
// also unlocks the order if the lock token holds it.
var finishScript = redis.NewScript(`
local rec = redis.call('HMGET', KEYS[1], 'd', 't')
if rec[2] ~= ARGV[1] then return 0 end
if rec[1] ~= '1' then
  redis.call('HSET', KEYS[1], 'd', '1', 'r', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if #KEYS > 1 and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return 1
`)

// Commit script results.
const (
	commitOK       = 0
	commitNotOwner = 1
	commitConflict = 2
)

// commitScript: KEYS[1] order key, KEYS[2] request key; ARGV token,
// prev exists ("0"/"1"), prev status, prev modifyTime, prev requestId,
// next status, next modifyTime, next requestId, order, reply, ttl ms.
// The order is compared on the fields kept beside its encoding, so the
// script never has to decode it. With KEYS[3] lock key and ARGV[12] lock
// token (CommitSuccessUnlock), a commit that succeeds (or had, by this
// token) also unlocks the order if the lock token holds it.
var commitScript = redis.NewScript(`
local function unlock()
  if #KEYS > 2 and redis.call('GET', KEYS[3]) == ARGV[12] then
    redis.call('DEL', KEYS[3])
  end
  return 0
end
local rq = redis.call('HMGET', KEYS[2], 'd', 't')
if rq[2] ~= ARGV[1] then return 1 end
local o = redis.call('HMGET', KEYS[1], 's', 'm', 'r')
if rq[1] == '1' then
  if o[1] == ARGV[6] and o[2] == ARGV[7] and o[3] == ARGV[8] then return unlock() end
  return 1
end
if ARGV[2] == '0' then
  if o[1] then return 2 end
elseif o[1] ~= ARGV[3] or o[2] ~= ARGV[4] or o[3] ~= ARGV[5] then
  return 2
end
redis.call('HSET', KEYS[1], 's', ARGV[6], 'm', ARGV[7], 'r', ARGV[8], 'o', ARGV[9])
redis.call('HSET', KEYS[2], 'd', '1', 'r', ARGV[10])
redis.call('PEXPIRE', KEYS[2], ARGV[11])
return unlock()
`)

// lockScript: KEYS[1] lock key; ARGV token, lease ms. SET NX PX plus
// recognizing our own token, which plain SET NX cannot do on a retry.
var lockScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then return 1 end
return 0
`)

// unlockScript: KEYS[1] lock key; ARGV token. Compare-and-delete.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// getRequestScript: KEYS[1] request key. Reads the record and its
// remaining lifetime in one step so they belong together.
var getRequestScript = redis.NewScript(`
local rec = redis.call('HMGET', KEYS[1], 'h', 'd', 'r')
if not rec[1] then return false end
return {rec[1], rec[2], rec[3] or '', redis.call('PTTL', KEYS[1])}
`)
