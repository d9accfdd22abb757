-- The room of tests/scripts/reload/game.lua: ticks kept in a global, each
-- "ping" answered with the code's tag and the tick count.
ticks = ticks or 0
in_tick = false

function room.tick()
  in_tick = true
  ticks = ticks + 1
  in_tick = false
end

function room.message(c, t)
  if t == "ping" then room.send(c, "pong", { text = "arena v1 ticks=" .. ticks }) end
end
