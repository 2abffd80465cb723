-- A re-authentication or a step up (API.md section 9): the login's assurance replaced, if
-- the login is still alive and is the user's. Guarded by a deadline: run late, it would
-- make a session fresh after its caller was told the re-authentication failed.
-- KEYS[1] f:<login>; ARGV: uid, aal, amr, auth time, deadline
-- Returns {clock seconds, clock microseconds, 1 (done) or 2 (no such login) or 0 (late)}.
if late(ARGV[5]) then return {clock[1], clock[2], 0} end
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return {clock[1], clock[2], 2} end
redis.call('HSET', KEYS[1], 'aal', ARGV[2], 'amr', ARGV[3], 'at', ARGV[4])
return {clock[1], clock[2], 1}
