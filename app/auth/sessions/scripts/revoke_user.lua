-- End every login of a user but ARGV[2] (empty: all). Returns how many ended.
-- KEYS[1] uf:<uid>; ARGV: prefix, login id to keep
local n = 0
for _, fam in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if fam ~= ARGV[2] then n = n + drop(ARGV[1], fam) end
end
announce(ARGV[1])
return n
