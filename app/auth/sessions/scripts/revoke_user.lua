-- End every login of a user but ARGV[2] (empty: all). Returns how many ended.
-- No deadline. Its callers (logout everywhere, a password change or reset, deactivation,
-- demotion, deletion, the command line) revoke before their commit; run late, after a 503,
-- it ends logins the user asked to end or that the change would have ended. That is the
-- failure we choose over the opposite one, a change committed with the old logins alive.
-- KEYS[1] uf:<uid>; ARGV: prefix, login id to keep
local n = 0
for _, fam in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if fam ~= ARGV[2] then n = n + drop(ARGV[1], fam) end
end
announce(ARGV[1])
return n
