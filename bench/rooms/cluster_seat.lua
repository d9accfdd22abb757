-- The room of bench/cluster_matchmaking.lua and bench/cluster_join.lua: no
-- tick; it prints its size on each join so the bench can check that no
-- room ever held more than its max_clients.
function room.join(c, options)
  print(("seat room=%d clients=%d"):format(room.id, #room.clients()))
end
