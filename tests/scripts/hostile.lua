-- Bad input and runaway scripts. Server: "ping" -> "pong"; "alloc:N" builds
-- an N-byte string; "hog" grows a table without end; "spin" loops forever
-- inside pcall, "cospin" inside a coroutine too; prints its tick rate once a
-- second. Client: sends the comma-separated words of $SAY once joined; with
-- $CHATTY=N sends N unreliable messages every tick.
local window_start, window_ticks = nil, 0

function server.tick()
  local now = sys.time()
  window_start = window_start or now
  window_ticks = window_ticks + 1
  if now - window_start >= 1.0 then
    print(("tick rate %.1f Hz"):format(window_ticks / (now - window_start)))
    window_start, window_ticks = now, 0
  end
end

function server.connect(c)
  print(("connect slot=%d"):format(slot(c)))
end

function server.disconnect(c, reason)
  print(("disconnect slot=%d reason=%s"):format(slot(c), reason))
end

function server.receive(c, data)
  if data == "ping" then
    send(c, "pong")
  elseif data:sub(1, 6) == "alloc:" then
    local s = string.rep("x", tonumber(data:sub(7)))
    send(c, "allocated " .. #s)
  elseif data == "hog" then
    local t = {}
    for i = 1, math.maxinteger do t[i] = i end
  elseif data == "spin" then
    while true do
      pcall(function() while true do end end)
    end
  elseif data == "cospin" then
    local co = coroutine.wrap(function() while true do pcall(function() while true do end end) end end)
    while true do pcall(co) end
  end
end

function server.shutdown()
  print("shutdown handler ran")
end

function client.connect()
  print("joined")
  for word in (os.getenv("SAY") or ""):gmatch("[^,]+") do send(word) end
end

local chatty = tonumber(os.getenv("CHATTY") or "0")

function client.tick()
  for _ = 1, chatty do send("noise", "unreliable") end
end

function client.receive(data)
  print("got " .. data)
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
