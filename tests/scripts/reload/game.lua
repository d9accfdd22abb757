-- Hot reload (tests/integration/test_reload.cpp, bench/reload.py): the tests
-- copy game.lua, arena.lua and lib/ into a temporary directory, run a server
-- on the copy with --watch and save the *_v2.lua and game_*.lua variants over
-- them. The server answers each message with its code's tag (lib/tag.lua's)
-- and a counter kept in a global, and logs "answered ..." on stderr (ordered
-- with the reload lines); a client pings every third tick (PING_EVERY=N:
-- every Nth) and prints each reply (ROOM=1: it pings the "arena" room instead).
count = count or 0

if sys.runtime_role() == "server" then rooms.define("arena", "arena.lua") end

local tag = require("lib.tag")

function server.receive(c, data)
  count = count + 1
  send(c, tag .. " count=" .. count)
  log.info("answered " .. tag .. " count=" .. count)
end

local room_mode = not sys.sandboxed() and os.getenv("ROOM") == "1"
local ping_every = not sys.sandboxed() and tonumber(os.getenv("PING_EVERY")) or 3
local arena

function client.connect()
  print("client joined (v1)")
  if not room_mode then return end
  rooms.join_or_create("arena", {}, function(r, err)
    if not r then print("join failed " .. tostring(err)) return end
    arena = r
    print("joined arena")
  end)
end

function client.tick(n)
  if n % ping_every ~= 0 then return end
  if room_mode then
    if arena then arena:send("ping", {}) end
  else
    send("ping")
  end
end

function client.receive(data) print("reply " .. data) end
function client.room_message(_, t, data) print("room " .. t .. " " .. tostring(data.text)) end
function client.disconnect(reason) print("disconnected: " .. reason) end
