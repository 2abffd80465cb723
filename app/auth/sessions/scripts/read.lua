-- Every authenticated request: the session, its login (last seen bumped at most once per
-- ARGV[2] seconds) with its assurance (aal, amr, auth time) and the user snapshot, in one
-- round trip.
-- No deadline: it changes only when the login was last seen.
-- KEYS[1] s:<hash>; ARGV: now, seen resolution, prefix
local s = redis.call('HMGET', KEYS[1], 'uid', 'fam')
if not s[1] then return false end
local fk = ARGV[3] .. 'f:' .. s[2]
local f = redis.call('HMGET', fk, 'seen', 'aal', 'amr', 'at')
local seen = f[1]
if not seen then return false end
if tonumber(ARGV[1]) - tonumber(seen) >= tonumber(ARGV[2]) then
  redis.call('HSET', fk, 'seen', ARGV[1])
end
local u = redis.call('GET', ARGV[3] .. 'u:' .. s[1]) or ''
-- One bulk string rather than an array: cheaper for the client to parse.
return cjson.encode({s[1], s[2], u, f[2] or '1', f[3] or '', f[4] or '0'})
