-- Logout: the login of the session cookie and that of the refresh cookie (the same one,
-- unless the browser holds a stale pair), in one round trip. Returns the user and login
-- ended first, for the audit trail, or nothing when neither was alive.
-- No deadline: run late, after its caller's 503, it ends what the user asked to end.
-- KEYS[1] s:<hash>, KEYS[2] f:<login of the refresh token>; ARGV: prefix, its generation
local p, who = ARGV[1], false
local s = redis.call('HMGET', KEYS[1], 'uid', 'fam')
if s[2] then
  redis.call('DEL', KEYS[1])
  if drop(p, s[2]) == 1 then who = {s[1], s[2]} end
end
-- Only the refresh token a login would still rotate: an old one ends nothing.
local r = redis.call('HMGET', KEYS[2], 'uid', 'g')
if r[1] and r[2] == ARGV[2] then
  local fam = string.sub(KEYS[2], #p + 3)
  if drop(p, fam) == 1 and not who then who = {r[1], fam} end
end
announce(p)
return who
