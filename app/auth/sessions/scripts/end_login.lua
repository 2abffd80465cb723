-- Logout: the login of the session cookie and that of the refresh cookie (the same one,
-- unless the browser holds a stale pair), in one round trip. Returns the user and login
-- ended first, for the audit trail, or nothing when neither was alive.
-- No deadline: run late, after its caller's 503, it ends what the user asked to end.
-- KEYS[1] s:<hash>, KEYS[2] r:<hash>; ARGV: prefix
local p, who = ARGV[1], false
local s = redis.call('HMGET', KEYS[1], 'uid', 'fam')
if s[2] then
  redis.call('DEL', KEYS[1])
  if drop(p, s[2]) == 1 then who = {s[1], s[2]} end
end
local r = redis.call('HMGET', KEYS[2], 'uid', 'fam', 'rot')
if r[2] and r[3] == '' and drop(p, r[2]) == 1 and not who then who = {r[1], r[2]} end
announce(p)
return who
