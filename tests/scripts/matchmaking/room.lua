-- A room that matchmaking opens (tests/scripts/matchmaking/server.lua): it
-- says what room.create and room.join were given.
function room.create(options)
  local ids = {}
  for i, id in ipairs(options.participants or {}) do ids[i] = tostring(id) end
  print(("create %d %s matchmaking=%s size=%s participants=%s"):format(room.id, room.type,
    tostring(options.matchmaking), tostring(options.size), table.concat(ids, ",")))
end

function room.join(c, options)
  if options.refuse then return false, "not you" end
  room.send(c, "welcome", { region = options.region, id = c.id })
  room.broadcast("joined", { id = c.id }, nil, c)
  print(("join %d %s id=%d"):format(room.id, room.type, c.id))
end
