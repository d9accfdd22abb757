-- Rooms bench, idle rooms (docs/benchmarks.md, Rooms): each bot creates its
-- own room with rooms.create("idle") and stays in it, doing nothing. The
-- bench reads the server's RSS and CPU with N such rooms, and with
-- IDLE_NO_ROOM=1 (the same bots connected, no rooms) as the baseline. The
-- room ticks at the server's rate (bench/rooms/idle.lua); IDLE_ROOM_TICK=0
-- uses a room file with no room.tick (bench/rooms/idle_no_tick.lua).
-- Each bot prints one line when its room is answered:
--   seat room=<id> ms=<latency> t=<sys.time()>   or   seat failed=<reason> ...
--   nshost --role=server --max-clients=1000 bench/idle_rooms.lua
--   nshost --role=client --headless --bots=1000 bench/idle_rooms.lua
if sys.runtime_role() == "server" then
  local file = os.getenv("IDLE_ROOM_TICK") == "0" and "rooms/idle_no_tick.lua" or "rooms/idle.lua"
  rooms.define("idle", file, { max_clients = 1 })
end

function client.connect()
  local t0 = sys.time()
  if os.getenv("IDLE_NO_ROOM") == "1" then
    print(("seat room=none ms=0 t=%.4f"):format(t0))
    return
  end
  local ok, err = rooms.create("idle", {}, function(r, join_err)
    local t1 = sys.time()
    local what = r and ("room=" .. r.id) or ("failed=" .. tostring(join_err):gsub("%s", "_"))
    print(("seat %s ms=%.3f t=%.4f"):format(what, (t1 - t0) * 1000, t1))
  end)
  if not ok then print(("seat failed=%s ms=0 t=%.4f"):format(tostring(err):gsub("%s", "_"), t0)) end
end
