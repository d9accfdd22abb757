-- A test room. Prints its lifecycle (the tests wait for these lines) and
-- does what a client's room.message asks.
local ticker = false

function room.create(options)
  print(("create %d %s"):format(room.id, room.type))
  ticker = options.ticker == true
  if options.metadata then room.set_metadata(options.metadata) end
end

function room.join(c, options)
  if options.refuse then return false, options.refuse end
  print(("join %d client %d auth %s"):format(room.id, c.id, tostring(c.auth and c.auth.user)))
  room.broadcast("joined", { id = c.id, user = c.auth and c.auth.user or false, clients = #room.clients() }, nil, c)
end

function room.leave(c, reason)
  print(("leave %d client %d %s"):format(room.id, c.id, reason))
end

function room.message(c, type, data)
  if type == "echo" then
    room.send(c, "echo", data)
  elseif type == "shout" then
    room.broadcast("shout", data)
  elseif type == "bytes" then
    room.broadcast_bytes("bytes", data)
  elseif type == "pos" then
    room.broadcast("pos", data)  -- the lobby type sends "pos" unreliable by policy
  elseif type == "lock" then
    room.lock()
    room.send(c, "locked", true)
  elseif type == "meta" then
    room.set_metadata(data)
    room.send(c, "meta", true)
  elseif type == "close" then
    room.close(data)
  elseif type == "fail" then
    error("failing on purpose")
  elseif type == "bomb" then
    local t = {}
    for i = 1, 100000000 do t[i] = string.rep("x", 4096) .. i end
  elseif type == "cycle" then
    local t = {}
    t.a = t
    local ok, err = pcall(room.send, c, "x", t)
    room.send(c, "cycle", err)
  elseif type == "misuse" then
    local results = {}
    for _, f in ipairs({
      function() room.send("nope", "x", 1) end,
      function() room.broadcast({}) end,
      function() room.send(c, "x", function() end) end,
      function() room.set_tick_rate(0) end,
      function() room.send_bytes(c, "x", {}) end,
    }) do
      local ok, err = pcall(f)
      results[#results + 1] = ok and "ok" or tostring(err)
    end
    room.send(c, "misuse", results)
  end
end

function room.tick(n)
  if ticker then room.broadcast("tick", n, "unreliable") end
end

function room.dispose()
  print(("dispose %d"):format(room.id))
end
