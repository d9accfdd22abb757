-- Bench workload 2, crowd (docs/benchmarks.md). Players wander a square map
-- whose side grows with sqrt(max_clients) (2000 units at 1024 slots), so the
-- density stays the same at every N (about 23 players per 3x3 cells).
-- Every tick each client gets its own snapshot of the players in its area of
-- interest, at most MAX_VISIBLE of them: the per-client visibility filter of
-- the seeds (scope filter, fog of war). Interest is managed with a uniform
-- grid: a player's area of interest is the 3x3 block of CELL-sized cells
-- around its cell (its own cell first, so the cap keeps the nearest ones).
-- Everyone in a cell shares that area, so each occupied cell's snapshot is
-- built once per tick and sent as one packet shared by the players in it
-- (broadcast with a target list); each player's entry is built once per
-- position update. Snapshot layout as in relay.lua.
local pack, unpack = string.pack, string.unpack
local concat = table.concat

local CELL = 100
local MAX_VISIBLE = 32

local function map_side(slots) return math.floor(2000 * math.sqrt(slots / 1024)) end

local clients, pos_x, pos_y = {}, {}, {}
local entry, slot_prefix = {}, {}  -- slot -> its snapshot entry / its packed u16 slot
local cell_entries, cell_handles, cell_len = {}, {}, {} -- cell -> the entries / handles in it this tick, and how many
local occupied, n_occupied = {}, 0  -- the cells with anyone in them this tick
local parts = {}
local cols, side = 0, 0

function server.connect(c)
  local s = slot(c)
  clients[s], pos_x[s], pos_y[s] = c, 0, 0
  slot_prefix[s] = pack("<I2", s)
  entry[s] = pack("<I2i2i2", s, 0, 0)
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
    -- The entry (u16 slot, i16 x, i16 y) is the slot then the client's own
    -- bytes: packed once per update, not once per tick per viewer.
    entry[s] = slot_prefix[s] .. data
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
    local list = cell_entries[c]
    for i = 1, cell_len[c] do
      n = n + 1
      parts[n + 1] = list[i]
      if n == MAX_VISIBLE then goto full end
    end
  end
  ::full::
  parts[1] = pack("<I4I2", tick32, n)
  return concat(parts, "", 1, n + 1)
end

local function setup(slots)
  side = map_side(slots)
  cols = side // CELL + 1
  for k = 1, cols * cols do cell_entries[k], cell_handles[k], cell_len[k] = {}, {}, 0 end
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

function server.tick(tick_num)
  local slots = max_clients()
  if cols == 0 then setup(slots) end
  -- Empty last tick's cells; the handle lists must end where this tick's do.
  for i = 1, n_occupied do
    local k = occupied[i]
    local handles = cell_handles[k]
    for j = 1, cell_len[k] do handles[j] = nil end
    cell_len[k] = 0
  end
  n_occupied = 0
  local last = cols - 1
  for s = 0, slots - 1 do
    local c = clients[s]
    if c then
      -- positions come from clients: clamp them onto the map
      local cx, cy = pos_x[s] // CELL, pos_y[s] // CELL
      if cx < 0 then cx = 0 elseif cx > last then cx = last end
      if cy < 0 then cy = 0 elseif cy > last then cy = last end
      local k = cx * cols + cy + 1
      local n = cell_len[k] + 1
      if n == 1 then
        n_occupied = n_occupied + 1
        occupied[n_occupied] = k
      end
      cell_entries[k][n], cell_handles[k][n], cell_len[k] = entry[s], c, n
    end
  end
  -- Everyone in a cell shares its area of interest: one snapshot per
  -- occupied cell, one packet shared by the cell's players.
  local tick32 = tick_num % 4294967296
  for i = 1, n_occupied do
    local k = occupied[i]
    broadcast(build(tick32, k), "unreliable", cell_handles[k])
  end
end

require("bench_client").install({ map_side = map_side })
