-- Bench workload 2, crowd (docs/benchmarks.md). Players wander a square map
-- whose side grows with sqrt(max_clients) (2000 units at 1024 slots), so the
-- density stays the same at every N (about 23 players per 3x3 cells).
-- Every tick each client gets its own snapshot of the players in its area of
-- interest, at most MAX_VISIBLE of them: the per-client visibility filter of
-- the seeds (scope filter, fog of war). Interest is managed with a uniform
-- grid: a player's area of interest is the 3x3 block of CELL-sized cells
-- around its cell (its own cell first, so the cap keeps the nearest ones).
-- Everyone in a cell shares that area, so each occupied cell's snapshot is
-- built once per tick and sent to each player in it; each player's entry is
-- packed once per tick. Snapshot layout as in relay.lua.
local pack, unpack = string.pack, string.unpack
local concat = table.concat

local CELL = 100
local MAX_VISIBLE = 32

local function map_side(slots) return math.floor(2000 * math.sqrt(slots / 1024)) end

local clients, pos_x, pos_y = {}, {}, {}
local entry, cell_of = {}, {}
local cells, cell_len = {}, {}  -- cell index -> array of slots / its length this tick
local built_tick, built = {}, {} -- cell index -> tick its snapshot was built / the snapshot
local parts = {}
local cols, side = 0, 0

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

-- around[k]: the cells of cell k's area of interest, k itself first, then
-- its neighbours on the map; computed once.
local around = {}

-- The snapshot for everyone in cell k: header, then at most MAX_VISIBLE
-- entries, joined by one table.concat.
local function build(tick32, k)
  local n = 0
  local cells_k = around[k]
  for j = 1, #cells_k do
    local c = cells_k[j]
    local list = cells[c]
    for i = 1, cell_len[c] do
      n = n + 1
      parts[n + 1] = entry[list[i]]
      if n == MAX_VISIBLE then goto full end
    end
  end
  ::full::
  parts[1] = pack("<I4I2", tick32, n)
  return concat(parts, "", 1, n + 1)
end

function server.tick(tick_num)
  local slots = max_clients()
  if cols == 0 then
    side = map_side(slots)
    cols = side // CELL + 1
    for k = 1, cols * cols do cells[k], cell_len[k], built_tick[k] = {}, 0, -1 end
    for cx = 0, cols - 1 do
      for cy = 0, cols - 1 do
        local list = { cx * cols + cy + 1 }
        for dx = -1, 1 do
          for dy = -1, 1 do
            local x, y = cx + dx, cy + dy
            if (dx ~= 0 or dy ~= 0) and x >= 0 and y >= 0 and x < cols and y < cols then
              list[#list + 1] = x * cols + y + 1
            end
          end
        end
        around[cx * cols + cy + 1] = list
      end
    end
  end
  for k = 1, cols * cols do cell_len[k] = 0 end
  for s = 0, slots - 1 do
    if clients[s] then
      local x, y = pos_x[s], pos_y[s]
      entry[s] = pack("<I2i2i2", s, x, y)
      -- positions come from clients: clamp them onto the map
      local cx = math.max(0, math.min(cols - 1, x // CELL))
      local cy = math.max(0, math.min(cols - 1, y // CELL))
      local k = cx * cols + cy + 1
      cell_of[s] = k
      local n = cell_len[k] + 1
      cells[k][n], cell_len[k] = s, n
    end
  end
  local tick32 = tick_num % 4294967296
  for s = 0, slots - 1 do
    local c = clients[s]
    if c then
      local k = cell_of[s]
      if built_tick[k] ~= tick_num then
        built_tick[k] = tick_num
        built[k] = build(tick32, k)
      end
      send(c, built[k], "unreliable")
    end
  end
end

require("bench_client").install({ map_side = map_side })
