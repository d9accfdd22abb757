-- Matchmaking bench (docs/matchmaking.md): N bots each enqueue for "bench"
-- (MATCH_SIZE players a match, default 4) as soon as they are welcomed, and
-- print the time from their enqueue to client.match_found (when they are
-- seated). With MATCH_REGIONS=k each bot sits in one of k regions and the
-- server's match function pairs only equal regions.
--   nshost --role=server --port=7391 --headless --max-clients=2100 \
--     --max-pending-handshakes=2100 --max-pending-per-address=2100 bench/matchmaking.lua
--   nshost --role=client --headless --bots=2000 --connect=nshost://127.0.0.1:7391 bench/matchmaking.lua
-- (docs/matchmaking.md "Figures" has the line that takes p50/p99 from the output.)
-- Each bot prints one line: `seated ms=<enqueue to match_found>` or `enqueue failed=<why>`.
local size = tonumber(os.getenv("MATCH_SIZE") or "4")
local regions = tonumber(os.getenv("MATCH_REGIONS") or "0")

if sys.runtime_role() == "server" then
  rooms.define("bench", "rooms/matched.lua", { max_clients = size })
  local options = { size = size }
  if regions > 0 then
    options.match = function(a, b) return a.region == b.region end
  end
  matchmaking.define("bench", options)
end

local t0

function client.connect()
  local properties = regions > 0 and { region = (sys.bot_index() or 1) % regions } or nil
  t0 = sys.time()
  local ok, err = matchmaking.enqueue("bench", size, properties, function(queued, why)
    if not queued then print(("enqueue failed=%s"):format(tostring(why):gsub("%s", "_"))) end
  end)
  if not ok then print(("enqueue failed=%s"):format(tostring(err):gsub("%s", "_"))) end
end

function client.match_found(match)
  print(("seated ms=%.3f room=%d"):format((sys.time() - t0) * 1000, match.room.id))
end
