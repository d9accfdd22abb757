-- Tag: the "your first game" of docs/scripting.md, a server and bots in one
-- file. Players walk a small grid; the one who is "it" tags another by
-- stepping next to it, scores a point, and the tagged player is "it" after a
-- one-second freeze. Run a server and four bots (from the repository's root):
--
--   build/nshost --role=server --port=7202 examples/tag/game.lua &
--   build/nshost --role=client --headless --bots=4 --connect=nshost://127.0.0.1:7202 examples/tag/game.lua
--
-- The server logs every tag and the scores every five seconds; each bot
-- prints when it becomes "it".
local W, H = 8, 8

-- Server. Players are keyed by c.id, a session id never reused, never by
-- slot: a slot goes to the next joiner at once.
local players = {}   -- c.id -> { c = handle, x =, y =, score = }
local it              -- c.id of the player who is "it"
local frozen_until = 0

local function pick_it()
  it = nil
  for id in pairs(players) do
    if not it or id < it then it = id end
  end
  if it then send(players[it].c, "it") end
end

function server.connect(c)
  players[c.id] = { c = c, x = math.random(W), y = math.random(H), score = 0 }
  send(c, "you " .. c.id)
  if not it then pick_it() end
  log.info("joined", c)
end

function server.disconnect(c, reason)
  players[c.id] = nil
  if it == c.id then pick_it() end
  log.info("left", c, reason)
end

local STEPS = { u = { 0, -1 }, d = { 0, 1 }, l = { -1, 0 }, r = { 1, 0 } }

function server.receive(c, data)
  local p, step = players[c.id], STEPS[data]
  if not p or not step then return end
  if c.id == it and sys.time() < frozen_until then return end
  p.x = math.min(W, math.max(1, p.x + step[1]))
  p.y = math.min(H, math.max(1, p.y + step[2]))
end

function server.tick()
  local tagger = players[it]
  if not tagger or sys.time() < frozen_until then return end
  for id, p in pairs(players) do
    if id ~= it and math.abs(p.x - tagger.x) + math.abs(p.y - tagger.y) <= 1 then
      tagger.score = tagger.score + 1
      log.info(("player %d tagged player %d (score %d)"):format(it, id, tagger.score))
      it = id
      frozen_until = sys.time() + 1
      send(p.c, "it")
      return
    end
  end
end

if sys.runtime_role() == "server" then
  timer.every(5, function()
    local line = {}
    for id, p in pairs(players) do line[#line + 1] = ("%d:%d"):format(id, p.score) end
    table.sort(line)
    log.info("scores " .. table.concat(line, " "))
  end)
end

-- Client: a bot walks at random, five steps a second.
local me, walking
local MOVES = { "u", "d", "l", "r" }

function client.connect()
  if walking then walking:cancel() end
  walking = timer.every(0.2, function() send(MOVES[math.random(#MOVES)], "unreliable") end)
end

function client.receive(data)
  local id = data:match("^you (%d+)$")
  if id then
    me = tonumber(id)
  elseif data == "it" then
    print(("player %s is it"):format(tostring(me)))
  end
end
