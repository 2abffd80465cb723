-- Every bearer request: the cached personal access token, its user's token generation and
-- the user snapshot, in one round trip; last use bumped at most once per ARGV[2] seconds.
-- KEYS[1] pat:<digest>; ARGV: now, use resolution, prefix
local t = redis.call('HMGET', KEYS[1], 'uid', 'id', 'sc', 'exp', 'used', 'gen')
if not t[1] then return 'miss' end
local gen = redis.call('GET', ARGV[3] .. 'patgen:' .. t[1]) or '0'
if gen ~= t[6] then return 'miss' end
if tonumber(ARGV[1]) >= tonumber(t[4]) then return 'expired' end
local touched = 0
if tonumber(ARGV[1]) - tonumber(t[5]) >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'used', ARGV[1])
  touched = 1
end
local u = redis.call('GET', ARGV[3] .. 'u:' .. t[1]) or ''
return cjson.encode({t[1], t[2], t[3], t[4], t[5], t[6], touched, u})
