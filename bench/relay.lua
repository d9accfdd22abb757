-- Bench workload 1, relay (docs/benchmarks.md). Server: every tick, one
-- snapshot with the latest position of every player, broadcast on the
-- unreliable channel as one shared packet; pings (reliable) are echoed.
-- Snapshot: u32 tick, u16 count, then count x (u16 slot, i16 x, i16 y).
--   nshost --role=server --max-clients=N --stats bench/relay.lua
--   nshost --role=client --headless --bots=N bench/relay.lua
local pack, unpack = string.pack, string.unpack
local concat = table.concat

local clients, pos_x, pos_y = {}, {}, {}
local entries = {}

function server.connect(c)
  local s = slot(c)
  clients[s], pos_x[s], pos_y[s] = c, 0, 0
end

function server.disconnect(c)
  clients[slot(c)] = nil
end

function server.receive(c, data, channel)
  if channel == "reliable" then
    send(c, data, "reliable")  -- ping: echo it back
  elseif #data == 4 then
    local s = slot(c)
    pos_x[s], pos_y[s] = unpack("<i2i2", data)
  end
end

function server.tick(tick_num)
  local n = 0
  for s = 0, max_clients() - 1 do
    if clients[s] then
      n = n + 1
      entries[n] = pack("<I2i2i2", s, pos_x[s], pos_y[s])
    end
  end
  if n > 0 then broadcast(pack("<I4I2", tick_num % 4294967296, n) .. concat(entries, "", 1, n), "unreliable") end
end

require("bench_client").install({})
