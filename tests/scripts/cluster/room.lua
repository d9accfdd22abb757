-- The room of tests/scripts/cluster/matchmaking.lua: it prints its size on
-- each join (the test checks no room holds more than its max_clients) and
-- what room.create was told.
function room.create(options)
  print(("room created room=%d size=%s"):format(room.id, tostring(options and options.size)))
end

function room.join(c, options)
  print(("seat room=%d clients=%d bot=%s"):format(room.id, #room.clients(), tostring(options and options.bot)))
end
