-- The server of tests/integration/test_rooms_server.cpp: room types, and a
-- server.auth that refuses, fails, admits bare, or admits with claims
-- depending on the token. Lines the tests wait for go to stdout (print).
rooms.define("arena", "arena.lua", { max_clients = 4 })
rooms.define("eight", "arena.lua", { max_clients = 8 })
rooms.define("lobby", "arena.lua", { max_clients = 64, auto_dispose = false, unreliable = { "pos" } })
rooms.define("failing", "failing.lua", { max_clients = 4, tick_rate = 20 })
rooms.define("idle", "idle.lua", { max_clients = 1 })

local ok, err = pcall(rooms.define, "arena", "arena.lua")
print("redefine: " .. tostring(ok) .. " " .. tostring(err))

function server.auth(token, project_id, address)
  if token == nil then return true end
  if token == "bad" then return false, "bad token" end
  if token == "boom" then error("auth exploded") end
  if token == "huge" then return { blob = string.rep("x", 20000) } end
  return { user = token, level = 7 }
end

function server.connect(c)
  print(("connect id=%d auth=%s"):format(c.id, tostring(c.auth and c.auth.user)))
end

local reported = false
function server.tick()
  local ok2, err2 = pcall(rooms.define, "late", "arena.lua")
  if not ok2 and not reported then
    reported = true
    print("late define: " .. tostring(err2))
  end
end
