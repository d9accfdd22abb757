-- --bots test: the server broadcasts every tick the list of occupied slots;
-- each bot prints "sees all N" once when a snapshot lists BOTS_EXPECTED
-- players. `joins` is a global of the bot's own Lua state: a shared state
-- would count past 1. Each bot prints its sys.bot_index() (print carries
-- the bot's "nshost[client#N] " tag).
local snapshot = require "nshost.snapshot"

local clients = {}
joins = 0  -- a global on purpose (see above)
function server.connect(c) clients[slot(c)] = c end
function server.disconnect(c) clients[slot(c)] = nil end

function server.tick(tick_num)
  local entries = {}
  for s = 0, max_clients() - 1 do
    if clients[s] then entries[#entries + 1] = snapshot.encode_entry(s, 0, 0) end
  end
  broadcast(snapshot.encode(tick_num, entries), "unreliable")
end

local expected = tonumber(os.getenv("BOTS_EXPECTED") or "0")
local told = false

function client.connect()
  joins = joins + 1
  print("bot joined joins=" .. joins)
  print("bot index", sys.bot_index())
end

function client.receive(data)
  local _, entries = snapshot.decode(data)
  if not told and #entries == expected then
    told = true
    print("sees all " .. expected)
  end
end

function client.disconnect(reason)
  print("bot disconnected: " .. reason)
end
