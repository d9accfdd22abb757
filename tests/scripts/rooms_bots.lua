-- A bot for tests/integration/test_rooms_client.cpp: joins "arena" and says
-- hello in it with its session id.
function client.connect()
  local session = rooms.session_id()
  rooms.join_or_create("arena", { level = 1 }, function(r, err)
    print(("bot session=%s joined %s codec=%s"):format(tostring(session), tostring(r), tostring(rooms.codec())))
    if r then r:send("hello", { session = session }) end
  end)
end
