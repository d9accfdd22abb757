-- The room of tests/scripts/cluster/matchmaking.lua: it prints its size on
-- each join (the test checks no room holds more than its max_clients) and
-- what room.create was told. A match's room locks itself, as
-- docs/matchmaking.md suggests: players moved from other servers hold seat
-- tokens, which a lock does not refuse.
function room.create(options)
  print(("room created room=%d size=%s"):format(room.id, tostring(options and options.size)))
  if options and options.matchmaking then room.lock() end
end

function room.join(c, options)
  print(("seat room=%d clients=%d bot=%s"):format(room.id, #room.clients(), tostring(options and options.bot)))
end
