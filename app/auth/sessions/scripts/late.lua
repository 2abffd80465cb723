-- The deadline of a script that creates or rotates tokens (app/auth/sessions/deadline.py):
-- `late(deadline)` is true once Redis's clock has passed it. `clock` is returned to the
-- caller, which keeps its estimate of Redis's clock from it.
local clock = redis.call('TIME')
local function late(deadline)
  return tonumber(clock[1]) + tonumber(clock[2]) / 1000000 > tonumber(deadline)
end
