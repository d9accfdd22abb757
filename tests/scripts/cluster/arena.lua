-- A room of the cluster tests: greets each joiner to the others, relays
-- chat to everyone, and broadcasts its tick number every 10 ticks.
function room.join(c, options)
  room.broadcast("joined", { id = c.id }, nil, c)
end

function room.message(c, type, data)
  room.broadcast(type, data)
end

function room.tick(n)
  if n % 10 == 0 then room.broadcast("tick", n) end
end
