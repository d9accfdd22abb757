-- Bench workload 2, crowd (docs/benchmarks.md). Players wander a square map
-- whose side grows with sqrt(max_clients) (2000 units at 1024 slots), so the
-- density stays the same at every N. Every tick each client gets its own
-- snapshot of the players within AOI_RADIUS of it, at most MAX_VISIBLE, found
-- through a uniform grid of CELL-sized cells (the 3x3 cells around it): the
-- per-client visibility filter of the seeds (scope filter, fog of war).
-- Each player's entry is packed once per tick and shared by every snapshot
-- that shows it. Snapshot layout as in relay.lua.
local pack, unpack = string.pack, string.unpack
local concat = table.concat

local CELL = 150
local AOI_RADIUS = 150
local MAX_VISIBLE = 32
local ROW = 4096  -- cell key = cx * ROW + cy

local function map_side(slots) return math.floor(2000 * math.sqrt(slots / 1024)) end

local clients, pos_x, pos_y = {}, {}, {}
local entry, cell_of = {}, {}
local cells = {}        -- key -> array of slots; reused across ticks
local cell_len = {}     -- key -> count this tick
local parts = {}

function server.connect(c)
  local s = slot(c)
  clients[s], pos_x[s], pos_y[s] = c, 0, 0
end

function server.disconnect(c)
  clients[slot(c)] = nil
end

function server.receive(c, data, channel)
  if channel == "reliable" then
    send(c, data, "reliable")
  elseif #data == 4 then
    local s = slot(c)
    pos_x[s], pos_y[s] = unpack("<i2i2", data)
  end
end

function server.tick(tick_num)
  local slots = max_clients()
  for k in pairs(cell_len) do cell_len[k] = 0 end
  for s = 0, slots - 1 do
    if clients[s] then
      local x, y = pos_x[s], pos_y[s]
      entry[s] = pack("<I2i2i2", s, x, y)
      local key = (x // CELL) * ROW + y // CELL
      cell_of[s] = key
      local list = cells[key]
      if not list then list = {}; cells[key] = list end
      local n = (cell_len[key] or 0) + 1
      list[n], cell_len[key] = s, n
    end
  end
  local tick32 = tick_num % 4294967296
  local r2 = AOI_RADIUS * AOI_RADIUS
  for s = 0, slots - 1 do
    local c = clients[s]
    if c then
      local x, y, key = pos_x[s], pos_y[s], cell_of[s]
      local n = 0
      for dx = -ROW, ROW, ROW do
        for dy = -1, 1 do
          local k = key + dx + dy
          local len = cell_len[k]
          if len and len > 0 then
            local list = cells[k]
            for i = 1, len do
              local o = list[i]
              local ex, ey = pos_x[o] - x, pos_y[o] - y
              if ex * ex + ey * ey <= r2 then
                n = n + 1
                parts[n] = entry[o]
                if n == MAX_VISIBLE then goto full end
              end
            end
          end
        end
      end
      ::full::
      send(c, pack("<I4I2", tick32, n) .. concat(parts, "", 1, n), "unreliable")
    end
  end
end

require("bench_client").install({ map_side = map_side })
