-- Interest management on a uniform grid (docs/state.md "Interest
-- management"): which entities each client is shown, fed to a room's views
-- (room.view(c), the id set of state sync) so that a client is sent only
-- the entities near it.
--
--   local interest = require("nshost.interest")
--   local grid = interest.grid({ cell = 100, radius = 250, max = 32 })
--   grid:move(key, x, y)      -- an entity's position (world units); adds it
--   grid:remove(key)          -- the entity is gone
--   grid:near(x, y [, radius [, max]]) -> array of keys within radius of
--                                (x, y), the nearest first when max is set
--   grid:refresh(viewer, x, y [, view]) -> entered, left
--       the viewer (any key, e.g. c.id) sees the entities within radius of
--       (x, y), at most max of them (the nearest), and always its own key;
--       entered/left are arrays of the keys that came into and went out of
--       its view since its last refresh. With `view` (anything with
--       :add(key) and :remove(key), such as room.view(c)) the changes are
--       applied to it.
--   grid:forget(viewer)       -- drop the viewer's set (it left)
--   grid:visible(viewer)      -> array of the keys of its last refresh
--   grid:position(key)        -> x, y (nil when unknown)
--
-- Options: cell (world units per cell side, > 0), radius (world units, >= 0),
-- max (entities per view, nil for no limit). Keys are strings or integers.
-- Cost: a refresh reads the cells the radius covers; keep the cell about
-- the radius's size. Positions must be finite numbers.
local M = {}

local floor, huge, sort = math.floor, math.huge, table.sort
local Grid = {}
Grid.__index = Grid

local function check_number(v, what, min)
  if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
    error(("interest: %s must be a finite number (got %s)"):format(what, tostring(v)), 3)
  end
  if min and v < min then error(("interest: %s must be >= %s (got %s)"):format(what, min, v), 3) end
  return v
end

local function check_key(key)
  local t = type(key)
  if t ~= "string" and not (t == "number" and math.type(key) == "integer") then
    error("interest: keys are strings or integers (got " .. tostring(key) .. ")", 3)
  end
end

-- grid{cell =, radius =, max =}
function M.grid(options)
  if type(options) ~= "table" then error("interest.grid: options must be a table", 2) end
  local cell = check_number(options.cell, "cell", 0)
  if cell <= 0 then error("interest.grid: cell must be > 0", 2) end
  local radius = check_number(options.radius or cell, "radius", 0)
  local max = options.max
  if max ~= nil and (math.type(max) ~= "integer" or max < 1) then
    error("interest.grid: max must be an integer >= 1 or nil", 2)
  end
  return setmetatable({
    cell = cell,
    radius = radius,
    max = max,
    cells = {},    -- cell id -> { [key] = true }
    where = {},    -- key -> { x, y, cell id }
    views = {},    -- viewer -> { [key] = true }
    scratch_keys = {},
    scratch_dist = {},
  }, Grid)
end

-- Cell coordinates fold into one integer id; 2^26 cells per axis either way
-- is far past any world a float position can address at a useful cell size.
local SPAN = 1 << 26
local function cell_id(cx, cy)
  return (cx + SPAN) * (SPAN * 2) + (cy + SPAN)
end

function Grid:move(key, x, y)
  check_key(key)
  check_number(x, "x")
  check_number(y, "y")
  local cx, cy = floor(x / self.cell), floor(y / self.cell)
  local id = cell_id(cx, cy)
  local at = self.where[key]
  if at then
    at[1], at[2] = x, y
    if at[3] == id then return end
    local old = self.cells[at[3]]
    old[key] = nil
    if next(old) == nil then self.cells[at[3]] = nil end
    at[3] = id
  else
    self.where[key] = { x, y, id }
  end
  local c = self.cells[id]
  if not c then
    c = {}
    self.cells[id] = c
  end
  c[key] = true
end

function Grid:remove(key)
  local at = self.where[key]
  if not at then return end
  local c = self.cells[at[3]]
  c[key] = nil
  if next(c) == nil then self.cells[at[3]] = nil end
  self.where[key] = nil
end

function Grid:position(key)
  local at = self.where[key]
  if at then return at[1], at[2] end
  return nil
end

-- Fills self.scratch_keys with the keys within radius of (x, y); returns the count.
function Grid:collect(x, y, radius)
  local cell, cells, where = self.cell, self.cells, self.where
  local keys, dist = self.scratch_keys, self.scratch_dist
  local r2 = radius * radius
  local n = 0
  for cx = floor((x - radius) / cell), floor((x + radius) / cell) do
    for cy = floor((y - radius) / cell), floor((y + radius) / cell) do
      local c = cells[cell_id(cx, cy)]
      if c then
        for key in pairs(c) do
          local at = where[key]
          local dx, dy = at[1] - x, at[2] - y
          local d2 = dx * dx + dy * dy
          if d2 <= r2 then
            n = n + 1
            keys[n] = key
            dist[key] = d2
          end
        end
      end
    end
  end
  for i = #keys, n + 1, -1 do keys[i] = nil end
  return n
end

function Grid:near(x, y, radius, max)
  check_number(x, "x")
  check_number(y, "y")
  radius = radius and check_number(radius, "radius", 0) or self.radius
  max = max or self.max
  local n = self:collect(x, y, radius)
  local out = table.move(self.scratch_keys, 1, n, 1, {})
  if max and n > max then
    local dist = self.scratch_dist
    sort(out, function(a, b) return dist[a] < dist[b] end)
    for i = n, max + 1, -1 do out[i] = nil end
  end
  for k in pairs(self.scratch_dist) do self.scratch_dist[k] = nil end
  return out
end

function Grid:refresh(viewer, x, y, view)
  local now = {}
  local keys = self:near(x, y)
  for i = 1, #keys do now[keys[i]] = true end
  if self.where[viewer] then now[viewer] = true end
  local before = self.views[viewer] or {}
  local entered, left = {}, {}
  for key in pairs(now) do
    if not before[key] then entered[#entered + 1] = key end
  end
  for key in pairs(before) do
    if not now[key] then left[#left + 1] = key end
  end
  self.views[viewer] = now
  if view then
    for i = 1, #left do view:remove(left[i]) end
    for i = 1, #entered do view:add(entered[i]) end
  end
  return entered, left
end

function Grid:forget(viewer)
  self.views[viewer] = nil
end

-- The keys the viewer saw at its last refresh (a new table).
function Grid:visible(viewer)
  local out = {}
  for key in pairs(self.views[viewer] or {}) do out[#out + 1] = key end
  return out
end

return M
