-- One match of the cluster example (a tick a second): once a player is in,
-- it counts to 5, broadcasting each number, then closes.
local n = 0

function room.create(options)
  print(("room %d opened for a match of %d"):format(room.id, options.size or 0))
end

function room.join(c, options)
  print(("room %d: a player of region %s sits (%d here)"):format(room.id, tostring(options.region), #room.clients()))
end

function room.tick(tick_num)
  if #room.clients() == 0 then return end
  n = n + 1
  room.broadcast("count", { n = n })
  if n >= 5 then room.close("round over") end
end
