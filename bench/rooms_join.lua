-- Rooms bench, join throughput (docs/benchmarks.md, Rooms). Server: one room
-- type "arena" of 8 seats. Each bot calls rooms.join_or_create("arena") once,
-- as soon as it is connected, and stays seated until stopped; it prints one
-- line on stdout when its answer arrives:
--   seat room=<id> ms=<join latency> t=<sys.time() at the answer> connect=<sys.time() at connect>
--   seat failed=<reason> ms=... t=... connect=...
-- The join latency runs from just before the call to the callback. The room
-- logs its size on every join and leave (`seat room=<id> clients=<n>`), so the
-- bench checks that no room ever held more than 8.
--   nshost --role=server --max-clients=2000 --max-pending-per-address=32 bench/rooms_join.lua
--   nshost --role=client --headless --bots=1000 bench/rooms_join.lua
if sys.runtime_role() == "server" then
  rooms.define("arena", "rooms/seat.lua", { max_clients = 8 })
end

function client.connect()
  local connected = sys.time()
  local function report(what, t1)
    print(("seat %s ms=%.3f t=%.4f connect=%.4f"):format(what, (t1 - connected) * 1000, t1, connected))
  end
  local ok, err = rooms.join_or_create("arena", {}, function(r, join_err)
    local t1 = sys.time()
    if r then
      report("room=" .. r.id, t1)
    else
      report("failed=" .. tostring(join_err):gsub("%s", "_"), t1)
    end
  end)
  if not ok then report("failed=" .. tostring(err):gsub("%s", "_"), sys.time()) end
end

function client.room_left(r, reason)
  print(("left room=%d reason=%s"):format(r.id, tostring(reason)))
end
