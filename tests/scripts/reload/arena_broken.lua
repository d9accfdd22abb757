-- A broken edit of arena.lua: a syntax error on line 5; every room keeps its
-- old code.
ticks = ticks or 0
function room.message(c, t)
  room.send(c, "pong", { text = "arena v3" }
end
