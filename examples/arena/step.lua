-- The one step function of the arena, run by the server room on the
-- authoritative player and by the client on its predicted copy: the same code
-- on the same numbers gives the same result, so a prediction only misses
-- when the inputs differ (one lost, one held), never by rounding.
local M = {}

M.WIDTH, M.HEIGHT = 40, 20   -- the arena, world units (one character each when drawn)
M.SPEED = 8                  -- world units per second along an axis
M.TICK_RATE = 30             -- Hz, the room's and the client's
M.DT = 1 / M.TICK_RATE
M.TICK_MOVE = M.SPEED * M.DT -- how far one tick of input moves a player: the unit of the error goals
M.TAG_RADIUS = 1.5           -- world units: closer than this, the player who is "it" tags
M.FIELDS = { dx = "i8", dy = "i8" }  -- an input: -1, 0 or 1 on each axis

local DIAGONAL = math.sqrt(0.5)

-- Positions are kept on a 1/1024 grid: exact in the f32 fields of the
-- state, so the client compares its prediction with what it receives
-- without a rounding residue.
local function snap(v) return math.floor(v * 1024 + 0.5) / 1024 end
local function clamp(v, lo, hi) return v < lo and lo or (v > hi and hi or v) end

-- s: a table with x and y (mutated in place); cmd: { dx =, dy = }; dt: seconds.
function M.step(s, cmd, dt)
  local dx, dy = clamp(cmd.dx or 0, -1, 1), clamp(cmd.dy or 0, -1, 1)
  local scale = (dx ~= 0 and dy ~= 0) and DIAGONAL or 1
  s.x = snap(clamp(s.x + dx * scale * M.SPEED * dt, 0, M.WIDTH - 1))
  s.y = snap(clamp(s.y + dy * scale * M.SPEED * dt, 0, M.HEIGHT - 1))
end

return M
