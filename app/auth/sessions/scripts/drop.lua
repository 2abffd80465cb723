-- Shared by the scripts that end logins: `drop` ends one login (its record, which holds
-- all that its refresh tokens need, its live session token and its index entry);
-- `announce` then names every login ended, in one message on the channel the
-- live-update broadcaster of every worker listens to (app/live).
local dropped = {}
local function drop(p, fam)
  local fk = p .. 'f:' .. fam
  local f = redis.call('HMGET', fk, 'uid', 's')
  if not f[1] then return 0 end
  if f[2] then redis.call('DEL', p .. 's:' .. f[2]) end
  redis.call('DEL', fk)
  redis.call('SREM', p .. 'uf:' .. f[1], fam)
  dropped[#dropped + 1] = fam
  return 1
end
local function announce(p)
  if #dropped > 0 then
    redis.call('PUBLISH', p .. '@REVOKED_CHANNEL@', table.concat(dropped, ' '))
  end
end
