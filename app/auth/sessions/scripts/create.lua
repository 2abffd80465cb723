-- A new login: its session and refresh tokens, its record, its index entry, the user snapshot.
-- Guarded by a deadline: run late, it would make a login nobody holds.
-- ARGV: prefix, now, session ttl, refresh ttl, uid, login id, session hash, refresh hash,
--       user agent, ip, user snapshot, snapshot ttl, deadline
-- Returns {clock seconds, clock microseconds, 1 (created) or 0 (late)}.
local p, now = ARGV[1], ARGV[2]
local sttl, rttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local uid, fam, sh, rh = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if late(ARGV[13]) then return {clock[1], clock[2], 0} end
local sk, rk, fk, idx = p .. 's:' .. sh, p .. 'r:' .. rh, p .. 'f:' .. fam, p .. 'uf:' .. uid
redis.call('HSET', sk, 'uid', uid, 'fam', fam)
redis.call('EXPIRE', sk, sttl)
redis.call('HSET', rk, 'uid', uid, 'fam', fam, 'rot', '')
redis.call('EXPIRE', rk, rttl)
redis.call('HSET', fk, 'uid', uid, 'created', now, 'seen', now, 'ua', ARGV[9], 'ip', ARGV[10],
  'exp', tonumber(now) + rttl, 's', sh, 'r', rh)
redis.call('EXPIRE', fk, rttl)
redis.call('SADD', idx, fam)
if redis.call('TTL', idx) < rttl then redis.call('EXPIRE', idx, rttl) end
redis.call('SET', p .. 'u:' .. uid, ARGV[11], 'EX', ARGV[12])
return {clock[1], clock[2], 1}
