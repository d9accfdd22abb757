-- The room of tests/scripts/listen/game.lua: each player's name (from its
-- join options) and x (from its "move" message) in room.state.
function room.create(options)
  print(("room listen=%s"):format(tostring(sys.is_listen_server())))
  room.state.players = {}
end

function room.join(c, options)
  room.state.players[c.id] = { name = options.name or "?", x = 0 }
end

function room.leave(c, reason)
  room.state.players[c.id] = nil
end

function room.message(c, type, data)
  if type == "move" then room.state.players[c.id].x = data.x end
end
