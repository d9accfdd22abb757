-- Hostile handler lookups and what the count hook cannot stop, in a server's
-- local script. $MODE picks the attack, armed on the third tick; the server
-- prints "alive after <mode>" from a later tick if it survives. Modes:
--   g_index_error, g_index_loop, field_error, field_alloc: as in
--     shards/hostile/game.lua, on the lookups of server.<handler>
--   gc_in_handler  a finalizer that loops, run by collectgarbage() in a handler
--   gc_at_close    a finalizer that loops, left for lua_close
--   quit_gc_at_close  gc_at_close, then sys.quit() on the third tick
--   stuck          a plain endless loop (with --handler-timeout=0 nothing stops it)
local mode = os.getenv("MODE") or "none"
local ticks, armed_tick, said = 0, nil, false

local function arm()
  armed_tick = ticks
  print("server arming " .. mode)
  local real = server
  local fired = false
  if mode == "g_index_error" or mode == "g_index_loop" then
    server = nil
    setmetatable(_G, {__index = function(_, key)
      if key ~= "server" then return nil end
      if not fired then
        fired = true
        if mode == "g_index_error" then error("lookup boom") end
        while true do end
      end
      return real
    end})
  elseif mode == "field_error" or mode == "field_alloc" then
    local handlers = {tick = real.tick}
    server = setmetatable({}, {__index = function(_, key)
      if not fired then
        fired = true
        if mode == "field_error" then error("field boom") end
        local hoard = {}
        for i = 1, 4000000 do hoard[i] = ("x"):rep(64) .. i end
      end
      return handlers[key]
    end})
  elseif mode == "gc_in_handler" then
    setmetatable({}, {__gc = function() while true do end end})
    collectgarbage()
  elseif mode == "quit_gc_at_close" then
    sys.quit()
  elseif mode == "stuck" then
    while true do end
  end
end

if mode == "gc_at_close" or mode == "quit_gc_at_close" then
  kept = setmetatable({}, {__gc = function() while true do end end})
end

function server.tick()
  ticks = ticks + 1
  if ticks == 3 then arm() end
  if armed_tick and ticks > armed_tick + 1 and not said then
    said = true
    print("alive after " .. mode)
  end
end
