-- Cluster join bench (docs/benchmarks.md "Cluster", bench/cluster.py): each
-- bot calls rooms.join_or_create("bench") once, when first welcomed, on
-- whichever server it dialled; the cluster seats it in a room of any server
-- (moving it there with a seat token when the room is elsewhere). Prints
--   joined ms=<call to callback> room=<id>   or   join failed=<why>
local size = tonumber(os.getenv("MATCH_SIZE") or "4")

if sys.runtime_role() == "server" then
  rooms.define("bench", "rooms/cluster_seat.lua", { max_clients = size })
end

local t0
local asked = false

function client.connect()
  if asked then return end
  asked = true
  t0 = sys.time()
  local ok, err = rooms.join_or_create("bench", {}, function(r, why)
    if r then
      print(("joined ms=%.3f room=%d"):format((sys.time() - t0) * 1000, r.id))
    else
      print(("join failed=%s"):format(tostring(why):gsub("%s", "_")))
    end
  end)
  if not ok then print(("join failed=%s"):format(tostring(err):gsub("%s", "_"))) end
end
