-- Relay: the seed's per-player pattern (clients[], occupied[], parallel
-- arrays). Each client moves and sends its position on the unreliable
-- channel; the server fans one snapshot of every position out from tick,
-- never from receive. Headless clients print once a second how many players
-- they see.
--
--   nshost --role=server examples/relay/game.lua
--   nshost --role=client --headless examples/relay/game.lua

local snapshot = require "nshost.snapshot"

-- Server: per-slot state, sized to the largest shard; loops use max_clients().
-- clients[] is the seed's per-slot handle, kept for scripts built on this one.
local clients, occupied, pos_x, pos_y = {}, {}, {}, {}  -- luacheck: ignore 241

function server.connect(c, handoff)
  local s = slot(c)
  clients[s], occupied[s] = c, true
  pos_x[s], pos_y[s] = 0, 0
  log.info("player joined", c)
end

function server.disconnect(c, reason)
  local s = slot(c)
  clients[s], occupied[s] = nil, false
  log.info("player left", c, reason)
end

function server.receive(c, data, channel)
  if channel ~= "unreliable" then return end
  local ok, x, y = pcall(snapshot.decode_position, data)
  if not ok then return end  -- a malformed position is dropped, not fatal
  local s = slot(c)
  pos_x[s], pos_y[s] = x, y
end

function server.tick(tick_num)
  local entries, n = {}, 0
  for s = 0, max_clients() - 1 do
    if occupied[s] then
      n = n + 1
      entries[n] = snapshot.encode_entry(s, pos_x[s], pos_y[s])
    end
  end
  if n > 0 then broadcast(snapshot.encode(tick_num, entries), "unreliable") end
end

-- Client: walk in a circle, report what the latest snapshot shows.
local t, seen, last_report, snapshots = 0, 0, -1, 0

function client.connect(handoff)
  print("joined; server has " .. max_clients() .. " slots")
end

function client.tick(tick_num, dt)
  t = t + dt
  local x = math.floor(100 * math.cos(t) + 0.5)
  local y = math.floor(100 * math.sin(t) + 0.5)
  send(snapshot.encode_position(x, y), "unreliable")  -- nil, "not connected", "ENOTCONN" until joined
  local now = sys.time()
  if now - last_report >= 1 then
    last_report = now
    print(("t=%.0fs sees %d players (%d snapshots)"):format(t, seen, snapshots))
  end
end

function client.receive(data, channel)
  local _, entries = snapshot.decode(data)
  seen = #entries
  snapshots = snapshots + 1
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
