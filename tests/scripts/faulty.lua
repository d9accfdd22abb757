-- Server: raises in receive on "boom", answers "ping" with "pong". Client:
-- sends $SAY once joined (reliable), prints what it receives.
function server.receive(c, data, channel)
  if data == "boom" then
    local t = nil
    return t.field  -- a runtime error inside the handler
  end
  if data == "ping" then send(c, "pong") end
end

function client.connect()
  print("joined")
  send(os.getenv("SAY") or "ping")
end

function client.receive(data, channel)
  print("got " .. data .. " on " .. channel)
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
