-- Rotate a login's tokens, or tell why not: grace (a concurrent tab), reused (the login
-- is revoked), invalid. Guarded by a deadline: run late, it would delete the session the
-- browser holds and hand the new pair to no one.
-- KEYS[1] r:<hash>; ARGV: prefix, now, grace, new session hash, new refresh hash,
--                         session ttl, deadline
-- Returns {clock seconds, clock microseconds, outcome, ...}.
local p, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if late(ARGV[7]) then return {clock[1], clock[2], 'late'} end
local r = redis.call('HMGET', KEYS[1], 'uid', 'fam', 'rot')
if not r[1] then return {clock[1], clock[2], 'invalid'} end
if r[3] ~= '' then
  if now - tonumber(r[3]) <= grace then return {clock[1], clock[2], 'grace', r[1], r[2]} end
  drop(p, r[2])
  announce(p)
  return {clock[1], clock[2], 'reused', r[1], r[2]}
end
local fk = p .. 'f:' .. r[2]
local f = redis.call('HMGET', fk, 's', 'exp')
if not f[2] then return {clock[1], clock[2], 'invalid', r[1], r[2]} end
local left = math.floor(tonumber(f[2]) - now)
if left <= 0 then
  drop(p, r[2])
  announce(p)
  return {clock[1], clock[2], 'invalid', r[1], r[2]}
end
-- Kept, marked as rotated, until the login ends: a later replay is then recognised.
redis.call('HSET', KEYS[1], 'rot', ARGV[2])
if f[1] then redis.call('DEL', p .. 's:' .. f[1]) end
local sttl = math.min(tonumber(ARGV[6]), left)
local sk, rk = p .. 's:' .. ARGV[4], p .. 'r:' .. ARGV[5]
redis.call('HSET', sk, 'uid', r[1], 'fam', r[2])
redis.call('EXPIRE', sk, sttl)
redis.call('HSET', rk, 'uid', r[1], 'fam', r[2], 'rot', '')
redis.call('EXPIRE', rk, left)
redis.call('HSET', fk, 's', ARGV[4], 'r', ARGV[5], 'seen', ARGV[2])
return {clock[1], clock[2], 'rotated', r[1], r[2], sttl, left}
