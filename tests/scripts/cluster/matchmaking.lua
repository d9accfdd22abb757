-- tests/integration/test_cluster_matchmaking.cpp: the same script on every
-- server of the cluster and in the bots. Servers define "quad" (rooms of 4)
-- with matchmaking of size 4, and "solo" (size 2, nobody to pair with in
-- the dequeue test). A bot enqueues once, when first welcomed (a transfer
-- to the match's server keeps its Lua state, so `asked` survives it), for
-- MM_TYPE (default "quad"); with MM_DEQUEUE=1 it dequeues as soon as it is
-- queued.
local kind = os.getenv("MM_TYPE") or "quad"
local size = kind == "quad" and 4 or 2

if sys.runtime_role() == "server" then
  rooms.define("quad", "room.lua", { max_clients = 4 })
  matchmaking.define("quad", { size = 4 })
  rooms.define("solo", "room.lua", { max_clients = 2 })
  matchmaking.define("solo", { size = 2 })
end

local asked = false

function client.connect()
  if asked then return end
  asked = true
  matchmaking.enqueue(kind, size, { bot = sys.bot_index() or 0 }, function(ok, why)
    if not ok then
      print("enqueue refused " .. tostring(why))
      return
    end
    print("queued")
    if os.getenv("MM_DEQUEUE") == "1" then
      matchmaking.dequeue(kind, function(out) print("dequeued " .. tostring(out)) end)
    end
  end)
end

function client.match_found(match)
  print(("matched room=%d size=%d session=%d"):format(match.room.id, match.size, rooms.session_id()))
end

function client.match_failed(room_type, reason)
  print("match failed " .. tostring(reason))
end
