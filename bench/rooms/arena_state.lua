-- The arena bench's room with state sync (bench/arena.lua, ARENA_SYNC=state):
-- the Colyseus rooms anchor's ArenaRoom (../shared/anchors/colyseus-rooms/
-- server.mjs) with its schema: players {x, y: f32, hp: u8, score: u16} keyed
-- by session id. Each player's latest input {dx, dy} moves it by up to 5
-- units a tick on each axis (wrapping); hp changes every 10 ticks and score
-- every 30. State sync sends each client the changes every tick.
-- ARENA_VIEW=K (K > 0): each client is shown only the K players nearest to
-- it (nshost.interest grid, refreshed every tick), for the one-big-room run.
local WORLD, SPEED = 1000, 5
local random = math.random
local view_k = tonumber(os.getenv("ARENA_VIEW") or "0") or 0

room.define_state({ players = { map = { x = "f32", y = "f32", hp = "u8", score = "u16" } } })
local players = room.state.players
if not players then
  players = {}
  room.state.players = players
end

local inputs = {}  -- session id -> {dx, dy}
local tick = 0
local grid
if view_k > 0 then
  -- Cells of 100 units: with 256 players in 1000 x 1000, ~2.5 players a
  -- cell; a radius of 200 holds ~32 of them on average.
  grid = require("nshost.interest").grid({ cell = 100, radius = 200, max = view_k })
end

local function clamp(v)
  if v ~= v then return 0 end  -- NaN
  return v < -1 and -1 or (v > 1 and 1 or v)
end

function room.join(c, options)
  local p = { x = random() * WORLD, y = random() * WORLD, hp = 100, score = 0 }
  players[c.id] = p
  if grid then grid:move(c.id, p.x, p.y) end
end

function room.leave(c, reason)
  players[c.id] = nil
  inputs[c.id] = nil
  if grid then
    grid:remove(c.id)
    grid:forget(c.id)
  end
end

function room.message(c, kind, data)
  if kind ~= "in" or type(data) ~= "table" then return end
  local dx, dy = data[1], data[2]
  if type(dx) == "number" and type(dy) == "number" then
    local i = inputs[c.id]
    if i then
      i[1], i[2] = dx, dy
    else
      inputs[c.id] = { dx, dy }
    end
  end
end

function room.tick()
  tick = tick + 1
  for id, p in pairs(players) do
    local i = inputs[id]
    if i then
      p.x = (p.x + clamp(i[1]) * SPEED + WORLD) % WORLD
      p.y = (p.y + clamp(i[2]) * SPEED + WORLD) % WORLD
      if grid then grid:move(id, p.x, p.y) end
    end
    if tick % 30 == 0 then p.score = p.score + 1 end
    if tick % 10 == 0 then p.hp = (p.hp + 7) % 101 end
  end
  if grid then
    for _, c in ipairs(room.clients()) do
      local p = players[c.id]
      if p then grid:refresh(c.id, p.x, p.y, room.view(c)) end
    end
  end
end
