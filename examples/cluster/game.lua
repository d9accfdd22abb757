-- The cluster example (README.md): the same script on three servers sharing
-- one Redis (--cluster) and in the bots. Each server defines the room type
-- "duel4" (four players) with matchmaking by region; a bot enqueues once, is
-- matched with three others of its region from any server, is moved to the
-- server that hosts the match's room if that is another one, plays a short
-- round there (the room counts to 5) and quits.

if sys.runtime_role() == "server" then
  rooms.define("duel4", "rooms/duel4.lua", { max_clients = 4, tick_rate = 1 })
  matchmaking.define("duel4", {
    size = 4, min_size = 2, max_wait_s = 5,
    match = function(a, b) return a.region == b.region end,
  })
end

local regions = { "eu", "us" }
local asked = false
local t0

function client.connect()
  -- A move to the match's server keeps this Lua state, and client.connect
  -- runs again there: enqueue only once.
  if asked then return end
  asked = true
  local region = regions[((sys.bot_index() or 1) % #regions) + 1]
  t0 = sys.time()
  matchmaking.enqueue("duel4", 4, { region = region }, function(ok, why)
    if not ok then print("bot " .. tostring(sys.bot_index()) .. ": not queued: " .. tostring(why)) end
  end)
end

function client.match_found(match)
  print(("bot %s: matched in %.0f ms, room %d with %d players"):format(
    tostring(sys.bot_index()), (sys.time() - t0) * 1000, match.room.id, match.size))
end

function client.room_message(r, type, data)
  if type == "count" then
    print(("bot %s: room %d says %d"):format(tostring(sys.bot_index()), r.id, data.n))
  end
end

function client.room_left(r, reason)
  print(("bot %s: room %d over (%s)"):format(tostring(sys.bot_index()), r.id, tostring(reason)))
end
