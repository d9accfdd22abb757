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

-- The snapshot for everyone in cell (cx, cy).
local function build(tick32, cx, cy)
  local n = 0
  for pass = 0, 1 do
    for dx = -1, 1 do
      for dy = -1, 1 do
        local x, y = cx + dx, cy + dy
        -- pass 0: the cell itself; pass 1: its neighbours on the map
        if ((dx == 0 and dy == 0) == (pass == 0)) and x >= 0 and y >= 0 and x < cols and y < cols then
          local k = x * cols + y + 1
          local list = cells[k]
          for i = 1, cell_len[k] do
            n = n + 1
            parts[n] = entry[list[i]]
            if n == MAX_VISIBLE then goto full end
          end
        end
      end
    end
  end
  ::full::
  return pack("<I4I2", tick32, n) .. concat(parts, "", 1, n)
end

function server.tick(tick_num)
  local slots = max_clients()
  if cols == 0 then
    side = map_side(slots)
    cols = side // CELL + 1
    for k = 1, cols * cols do cells[k], cell_len[k], built_tick[k] = {}, 0, -1 end
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
        built[k] = build(tick32, (k - 1) // cols, (k - 1) % cols)
      end
      send(c, built[k], "unreliable")
    end
  end
end

require("bench_client").install({ map_side = map_side })
