-- The room of bench/matchmaking.lua: does nothing (no tick), so the bench
-- times the matchmaker and the seating, not the room.
function room.join(c, options) end
