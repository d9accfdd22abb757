-- The arena bench's room (bench/arena.lua): the simulation of the Colyseus
-- rooms anchor's ArenaRoom (../shared/anchors/colyseus-rooms/server.mjs).
-- Each player has x, y in [0, 1000), hp and score; its latest input {dx, dy}
-- moves it by up to 5 units a tick on each axis (wrapping); hp changes every
-- 10 ticks and score every 30. Every tick the room broadcasts every player's
-- state as one flat array:
--   {tick, id1, x1, y1, hp1, score1, id2, ...}
-- with x and y in hundredths of a unit as integers (the anchor sends float32).
local WORLD, SPEED = 1000, 5
local floor, random = math.floor, math.random

local players = {}  -- session id -> {x, y, hp, score, dx, dy}
local order = {}    -- session ids in join order
local tick = 0

local function clamp(v)
  if v ~= v then return 0 end  -- NaN
  return v < -1 and -1 or (v > 1 and 1 or v)
end

function room.join(c, options)
  players[c.id] = { x = random() * WORLD, y = random() * WORLD, hp = 100, score = 0 }
  order[#order + 1] = c.id
end

function room.leave(c, reason)
  players[c.id] = nil
  for i = #order, 1, -1 do
    if order[i] == c.id then table.remove(order, i) end
  end
end

function room.message(c, kind, data)
  local p = players[c.id]
  if kind ~= "in" or not p or type(data) ~= "table" then return end
  local dx, dy = data[1], data[2]
  if type(dx) == "number" and type(dy) == "number" then p.dx, p.dy = dx, dy end
end

local out = {}

function room.tick()
  tick = tick + 1
  out[1] = tick
  local n = 1
  for i = 1, #order do
    local id = order[i]
    local p = players[id]
    if p.dx then
      p.x = (p.x + clamp(p.dx) * SPEED + WORLD) % WORLD
      p.y = (p.y + clamp(p.dy) * SPEED + WORLD) % WORLD
    end
    if tick % 30 == 0 then p.score = p.score + 1 end
    if tick % 10 == 0 then p.hp = (p.hp + 7) % 101 end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] =
      id, floor(p.x * 100), floor(p.y * 100), p.hp, p.score
    n = n + 5
  end
  for k = #out, n + 1, -1 do out[k] = nil end
  if n > 1 then room.broadcast("state", out) end
end
