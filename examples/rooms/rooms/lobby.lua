-- The lobby: one room everyone joins first. A player says "hello" once
-- seated; the lobby answers with the player's session id and how many are
-- here. Its metadata (what rooms.list shows) counts the players.
local count = 0

function room.join(c, options)
  count = count + 1
  room.set_metadata({ players = count })
end

function room.message(c, kind, data)
  if kind == "hello" then room.send(c, "welcome", { id = c.id, players = count }) end
end

function room.leave(c, reason)
  count = count - 1
  room.set_metadata({ players = count })
end
