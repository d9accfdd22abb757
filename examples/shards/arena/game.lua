-- Shards example, the arena tree (see ../lobby/game.lua for how to run it).
-- Players arrive with their name as the handoff, score a point per "hit"
-- they send, and after ROUND_TICKS ticks (default 90, 3 s at 30 Hz) the
-- arena redirects everyone back to LOBBY_URL with "<name> scored <n>".

local players = {}  -- server: client handle -> { name, score }
local round_end

function server.connect(c, handoff)
  local name = handoff ~= "" and handoff or ("anon-" .. slot(c))
  players[c] = { name = name, score = 0 }
  print(("arena: %s joined"):format(name))
end

function server.receive(c, data)
  if data == "hit" and players[c] then players[c].score = players[c].score + 1 end
end

function server.disconnect(c, reason)
  local p = players[c]
  players[c] = nil
  if p then print(("arena: %s left (%s) with %d"):format(p.name, reason, p.score)) end
end

function server.tick(n)
  if next(players) == nil then
    round_end = nil
    return
  end
  round_end = round_end or n + tonumber(os.getenv("ROUND_TICKS") or "90")
  if n < round_end then return end
  local lobby = os.getenv("LOBBY_URL") or "nshost://127.0.0.1:7101"
  for c, p in pairs(players) do
    if connected(c) then
      print(("arena: round over, %s scored %d"):format(p.name, p.score))
      redirect(c, lobby, ("%s scored %d"):format(p.name, p.score))
    end
  end
  round_end = nil
end

-- Client side: a fresh state fetched from this shard; only the handoff came along.
local me
local hits = 0

function client.connect(handoff)
  me = handoff
  print(("arena: playing as %s (fresh state, sandboxed: %s)"):format(me, tostring(sys.sandboxed())))
end

function client.tick(n)
  if me and n % 5 == 0 then
    hits = hits + 1
    send("hit")
  end
end

function client.disconnect(reason)
  print(("arena client disconnected: %s after %d hits"):format(reason, hits))
end
