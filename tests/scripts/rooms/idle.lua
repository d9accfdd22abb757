-- An idle room: it seats anyone and does nothing (no room.tick, so no timer).
function room.join(c) end
