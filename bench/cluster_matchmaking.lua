-- Cluster matchmaking bench (docs/benchmarks.md "Cluster", bench/cluster.py):
-- the same script on every server of the cluster and in the bots. Servers
-- define "bench" (rooms of MATCH_SIZE, default 4) with matchmaking of that
-- size. Each bot enqueues once, as soon as it is first welcomed, and prints
--   seated ms=<enqueue to client.match_found> room=<id> server=<port>
-- (or `enqueue failed=<why>`). A bot whose match's room is on another
-- server is moved there first (a transfer keeps this Lua state, so t0 and
-- `enqueued` survive it) and client.match_found fires there.
-- The room prints `seat room=<id> clients=<n>` on each join, so the bench
-- checks that no room ever held more than its size.
local size = tonumber(os.getenv("MATCH_SIZE") or "4")

if sys.runtime_role() == "server" then
  rooms.define("bench", "rooms/cluster_seat.lua", { max_clients = size })
  matchmaking.define("bench", { size = size })
end

local t0
local enqueued = false

function client.connect()
  if enqueued then return end
  enqueued = true
  t0 = sys.time()
  local ok, err = matchmaking.enqueue("bench", size, nil, function(queued, why)
    if not queued then print(("enqueue failed=%s"):format(tostring(why):gsub("%s", "_"))) end
  end)
  if not ok then print(("enqueue failed=%s"):format(tostring(err):gsub("%s", "_"))) end
end

function client.match_found(match)
  print(("seated ms=%.3f room=%d size=%d"):format((sys.time() - t0) * 1000, match.room.id, match.size))
end

function client.match_failed(room_type, reason)
  print(("match failed=%s"):format(tostring(reason):gsub("%s", "_")))
end
