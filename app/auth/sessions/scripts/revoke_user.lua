-- End the logins of a user but ARGV[2] (empty: all), a batch of the index at a time (the
-- caller loops until the cursor is back to 0, so no call holds Redis for long).
-- No deadline. Its callers (logout everywhere, a password change or reset, deactivation,
-- demotion, deletion, the command line) revoke before their commit; run late, after a 503,
-- it ends logins the user asked to end or that the change would have ended. That is the
-- failure we choose over the opposite one, a change committed with the old logins alive.
-- KEYS[1] uf:<uid>; ARGV: prefix, login id to keep, cursor, batch size
-- Returns {next cursor, how many ended}.
local scan = redis.call('SSCAN', KEYS[1], ARGV[3], 'COUNT', ARGV[4])
local n = 0
for _, fam in ipairs(scan[2]) do
  if fam ~= ARGV[2] then n = n + drop(ARGV[1], fam) end
end
announce(ARGV[1])
return {scan[1], n}
