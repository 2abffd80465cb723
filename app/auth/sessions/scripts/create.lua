-- A new login: its session token, its record (refresh generation 0), its index entry,
-- the user snapshot. A user holding `cap` logins already loses the oldest one.
-- Guarded by a deadline: run late, it would make a login nobody holds.
-- ARGV: prefix, now, session ttl, refresh ttl, uid, login id, session hash,
--       user agent, ip, user snapshot, snapshot ttl, deadline, cap, aal, amr, auth time
-- Returns {clock seconds, clock microseconds, 1 (created) or 0 (late), ended login or false}.
local p, now = ARGV[1], ARGV[2]
local sttl, rttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local uid, fam, sh = ARGV[5], ARGV[6], ARGV[7]
if late(ARGV[12]) then return {clock[1], clock[2], 0, false} end
local sk, fk, idx = p .. 's:' .. sh, p .. 'f:' .. fam, p .. 'uf:' .. uid
local ended = false
local members = redis.call('SMEMBERS', idx)
if #members >= tonumber(ARGV[13]) then
  -- Members whose record expired are index entries only: forget them, count the rest.
  local live, oldest, oldest_at = 0, nil, nil
  for _, other in ipairs(members) do
    local at = redis.call('HGET', p .. 'f:' .. other, 'created')
    if at then
      live = live + 1
      at = tonumber(at)
      if oldest_at == nil or at < oldest_at then oldest, oldest_at = other, at end
    else
      redis.call('SREM', idx, other)
    end
  end
  if live >= tonumber(ARGV[13]) then
    drop(p, oldest)
    announce(p)
    ended = oldest
  end
end
redis.call('HSET', sk, 'uid', uid, 'fam', fam)
redis.call('EXPIRE', sk, sttl)
redis.call('HSET', fk, 'uid', uid, 'created', now, 'seen', now, 'ua', ARGV[8], 'ip', ARGV[9],
  'exp', tonumber(now) + rttl, 's', sh, 'g', 0, 'rt', 0, 'rc', 0, 'rw', 0,
  'aal', ARGV[14], 'amr', ARGV[15], 'at', ARGV[16])
redis.call('EXPIRE', fk, rttl)
redis.call('SADD', idx, fam)
if redis.call('TTL', idx) < rttl then redis.call('EXPIRE', idx, rttl) end
redis.call('SET', p .. 'u:' .. uid, ARGV[10], 'EX', ARGV[11])
return {clock[1], clock[2], 1, ended}
