-- Resume after a dropped link. Server: keeps a per-client counter in a table
-- keyed by the client handle; "inc" bumps it and answers "count=N"; "kickme"
-- gets the client kicked. Client: sends "inc" three times on joining and once
-- more on resuming; $CLIENT_QUIT_AFTER=N quits after the Nth answer.
local counters = {}

function server.connect(c, handoff)
  counters[c] = 0
  print(("connect slot=%d handoff=%q"):format(slot(c), handoff))
end

function server.receive(c, data)
  if data == "inc" then
    counters[c] = counters[c] + 1
    send(c, "count=" .. counters[c])
  elseif data == "kickme" then
    kick(c, "asked for it")
  end
end

function server.lost(c)
  print(("lost slot=%d connected=%s send=%s"):format(slot(c), tostring(connected(c)), tostring(send(c, "x"))))
end

function server.resumed(c)
  print(("resumed slot=%d count=%s connected=%s"):format(slot(c), tostring(counters[c]), tostring(connected(c))))
end

function server.disconnect(c, reason)
  print(("disconnect slot=%d reason=%s"):format(slot(c), reason))
  counters[c] = nil
end

local answers = 0

function client.connect(handoff)
  print(("joined handoff=%q"):format(handoff))
  for _ = 1, 3 do send("inc") end
  if os.getenv("CLIENT_KICKME") then send("kickme") end
end

function client.receive(data)
  print("got " .. data)
  answers = answers + 1
  if tonumber(os.getenv("CLIENT_QUIT_AFTER") or "-1") == answers then sys.quit() end
end

function client.lost()
  print("client lost")
end

function client.resumed()
  print("client resumed")
  send("inc")
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
