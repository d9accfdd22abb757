-- A server whose every tick runs away (run it with --sandbox and a small
-- --instruction-budget): the budget ends each tick, and the host must still
-- admit clients and answer signals in between.
function server.tick()
  while true do end
end

function server.connect(c)
  print("spin server connect slot=" .. slot(c))
end

function client.connect()
  print("spin client connect")
end
