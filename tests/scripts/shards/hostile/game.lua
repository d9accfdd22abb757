-- Hostile handler lookups and what the count hook cannot stop, as a fetched
-- (sandboxed) client runs them. The server (from disk) sends $MODE to each
-- client that joins; the client arms that attack in client.receive, so the
-- next lookups of client.<handler> meet it. It prints "alive after <mode>"
-- from a later tick if it survives. Modes:
--   g_index_error  _G's __index raises once when `client` is looked up
--   g_index_loop   _G's __index loops once (the handler timeout ends it)
--   field_error    client's own __index raises once
--   field_alloc    client's __index allocates ~400 MB once (the memory cap ends it)
--   xpcall         a message handler that loops (called for the timeout's
--                  error it would run with hooks off)
--   gc             setmetatable with a __gc field (refused by the sandbox)
local mode, armed_tick, said = nil, nil, false

local function on_tick(n)
  if armed_tick and n > armed_tick + 1 and not said then
    said = true
    print("alive after " .. mode)
  end
end

local function on_receive(data)
  mode = data
  print("client arming " .. mode)
  local real = client
  local fired = false
  if mode == "g_index_error" or mode == "g_index_loop" then
    client = nil
    setmetatable(_G, {__index = function(_, key)
      if key ~= "client" then return nil end
      if not fired then
        fired = true
        if mode == "g_index_error" then error("lookup boom") end
        while true do end
      end
      return real
    end})
  elseif mode == "field_error" or mode == "field_alloc" then
    local handlers = {tick = real.tick, receive = real.receive, connect = real.connect}
    client = setmetatable({}, {__index = function(_, key)
      if not fired then
        fired = true
        if mode == "field_error" then error("field boom") end
        local hoard = {}
        for i = 1, 4000000 do hoard[i] = ("x"):rep(64) .. i end
      end
      return handlers[key]
    end})
  elseif mode == "xpcall" then
    xpcall(function() while true do end end, function() while true do end end)
  elseif mode == "gc" then
    setmetatable({}, {__gc = function() while true do end end})
  end
end

function client.connect()
  print("client joined")
end

function client.tick(n)
  if mode and not armed_tick then armed_tick = n end
  on_tick(n)
end

function client.receive(data)
  on_receive(data)
end

function server.connect(c)
  send(c, os.getenv("MODE") or "none")
end
