-- --admin test: the client sends "boom" (the handler raises), "spin" (the
-- handler loops until --handler-timeout stops it) and "kick" (server.kick)
-- once joined; the server prints "kicked" after the kick.
function server.receive(c, data)
  if data == "boom" then error("boom") end
  if data == "spin" then while true do end end
  if data == "kick" then
    kick(c, "told to")
    print("kicked")
  end
end

function client.connect()
  send("boom")
  send("spin")
  send("kick")
end
