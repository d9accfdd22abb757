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

-- The "pos" message the room sends each tick (unreliable), little-endian:
-- u32 tick, u8 count, then per player u32 id, f32 x, f32 y, u32 ack (the
-- last input seq the room applied), u8 depth (inputs waiting in its buffer).
-- 5 + 17 bytes a player; x and y on the 1/1024 grid are exact in an f32.
local HEADER, RECORD = "<I4B", "<I4ffI4B"
local RECORD_BYTES = string.packsize(RECORD)

-- tick: integer >= 0; players: array of { id =, x =, y =, ack =, depth = }.
function M.pack_positions(tick, players)
  local parts = { string.pack(HEADER, tick, #players) }
  for i, p in ipairs(players) do parts[i + 1] = string.pack(RECORD, p.id, p.x, p.y, p.ack, p.depth) end
  return table.concat(parts)
end

-- bytes from the network: tick, and an array of { id =, x =, y =, ack =,
-- depth = }; or nil and a reason when they are not a "pos" message.
function M.unpack_positions(bytes)
  if type(bytes) ~= "string" or #bytes < string.packsize(HEADER) then return nil, "truncated" end
  local tick, count, at = string.unpack(HEADER, bytes)
  if #bytes ~= at - 1 + count * RECORD_BYTES then return nil, "length does not match the count" end
  local players = {}
  for i = 1, count do
    local id, x, y, ack, depth
    id, x, y, ack, depth, at = string.unpack(RECORD, bytes, at)
    if x ~= x or y ~= y then return nil, "not a number" end
    players[i] = { id = id, x = x, y = y, ack = ack, depth = depth }
  end
  return tick, players
end

return M
