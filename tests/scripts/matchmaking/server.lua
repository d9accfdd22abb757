-- The server of tests/integration/test_matchmaking.cpp: room types with
-- matchmaking (docs/matchmaking.md). Lines the tests wait for go to stdout.
rooms.define("quad", "room.lua", { max_clients = 4 })
rooms.define("regional", "room.lua", { max_clients = 4 })
rooms.define("quick", "room.lua", { max_clients = 4 })
rooms.define("broken", "room.lua", { max_clients = 2 })
rooms.define("picky", "room.lua", { max_clients = 2 })
rooms.define("plain", "room.lua", { max_clients = 4 })

matchmaking.define("quad", { size = 4 })
matchmaking.define("regional", {
  size = 2,
  match = function(a, b) return a.region == b.region end,
})
matchmaking.define("quick", { size = 4, min_size = 2, max_wait_s = 0.3 })
-- A match function that raises for `bad` players and never returns for
-- `loop` players: both are only "not compatible".
matchmaking.define("broken", {
  size = 2,
  match = function(a, b)
    if a.bad or b.bad then error("bad player") end
    if a.loop or b.loop then while true do end end
    return true
  end,
})
-- Its room refuses players whose properties say so (room.join).
matchmaking.define("picky", { size = 2 })

for _, case in ipairs({
  { "undefined", { size = 2 } },
  { "plain", { size = 5 } },
  { "plain", { size = 2, min_size = 3 } },
  { "plain", { size = 2, colour = "red" } },
  { "plain", { size = 2, match = 42 } },
  { "plain", {} },
  { "quad", { size = 4 } },
}) do
  local ok, err = pcall(matchmaking.define, case[1], case[2])
  print("define " .. case[1] .. ": " .. tostring(ok) .. " " .. tostring(err))
end

local reported = false
function server.tick()
  if reported then return end
  reported = true
  local ok, err = pcall(matchmaking.define, "plain", { size = 2 })
  print("late define: " .. tostring(ok) .. " " .. tostring(err))
end
