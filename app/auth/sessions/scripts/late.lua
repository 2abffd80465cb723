-- Whether the caller has given up on this command: see LATE_AFTER_SECONDS in types.py.
local function late(deadline)
  if tonumber(deadline) == 0 then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 > tonumber(deadline)
end
