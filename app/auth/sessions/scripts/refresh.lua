-- Rotate a login's tokens, or tell why not. A refresh token names its login and its
-- generation (checked by its MAC before this runs, app/auth/sessions/types.py), so reuse
-- detection needs nothing but the login's own record: the current generation and when
-- it was last rotated. A rotation keeps nothing behind; the record dies with the login.
-- Guarded by a deadline: run late, it would delete the session the browser holds and
-- hand the new pair to no one.
-- KEYS[1] f:<login>; ARGV: prefix, now, grace, generation presented, new session hash,
--   session ttl, deadline, hash of the session cookie sent with it ('' if none),
--   rotations allowed per window, window seconds
-- Returns {clock seconds, clock microseconds, outcome, uid, login, ...}:
--   rotated (.., session ttl, rest of the login, new generation), grace, reused,
--   mismatch (the session cookie belongs to another login), limited (.., retry after),
--   invalid.
local p, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if late(ARGV[7]) then return {clock[1], clock[2], 'late'} end
local fam = string.sub(KEYS[1], #p + 3)
local f = redis.call('HMGET', KEYS[1], 'uid', 's', 'exp', 'g', 'rt', 'rc', 'rw')
if not f[1] then return {clock[1], clock[2], 'invalid'} end
local uid, g, gen = f[1], tonumber(f[4]), tonumber(ARGV[4])
if gen > g then return {clock[1], clock[2], 'invalid', uid, fam} end
if gen < g then
  if gen == g - 1 and now - tonumber(f[5]) <= grace then return {clock[1], clock[2], 'grace', uid, fam} end
  drop(p, fam)
  announce(p)
  return {clock[1], clock[2], 'reused', uid, fam}
end
if ARGV[8] ~= '' then
  local other = redis.call('HGET', p .. 's:' .. ARGV[8], 'fam')
  if other and other ~= fam then return {clock[1], clock[2], 'mismatch', uid, fam} end
end
local left = math.floor(tonumber(f[3]) - now)
if left <= 0 then
  drop(p, fam)
  announce(p)
  return {clock[1], clock[2], 'invalid', uid, fam}
end
local count, window_start, window = tonumber(f[6]), tonumber(f[7]), tonumber(ARGV[10])
if now - window_start >= window then count, window_start = 0, now end
if count >= tonumber(ARGV[9]) then
  return {clock[1], clock[2], 'limited', uid, fam, math.ceil(window_start + window - now)}
end
if f[2] then redis.call('DEL', p .. 's:' .. f[2]) end
local sttl = math.min(tonumber(ARGV[6]), left)
local sk = p .. 's:' .. ARGV[5]
redis.call('HSET', sk, 'uid', uid, 'fam', fam)
redis.call('EXPIRE', sk, sttl)
redis.call('HSET', KEYS[1], 's', ARGV[5], 'g', g + 1, 'rt', ARGV[2], 'seen', ARGV[2],
  'rc', count + 1, 'rw', window_start)
return {clock[1], clock[2], 'rotated', uid, fam, sttl, left, g + 1}
