-- End one login of a user (the sessions list's DELETE), if it is theirs.
-- No deadline: run late, it ends the session the user asked to end.
-- KEYS[1] uf:<uid>; ARGV: prefix, login id
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return 0 end
local n = drop(ARGV[1], ARGV[2])
announce(ARGV[1])
return n
