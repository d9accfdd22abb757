-- The idle-room bench's room (bench/idle_rooms.lua): one client, nothing to
-- do. It still ticks (at the server's rate), as a game room waiting for
-- players would, so the figure includes the tick's cost.
local ticks = 0

function room.tick()
  ticks = ticks + 1
end
