-- Rooms: a lobby and a small match type in one server (docs/rooms.md). Run a
-- server and six bots from one command (from the repository's root):
--
--   build/nshost --role=server --port=7201 examples/rooms/game.lua & sleep 1; build/nshost --role=client --headless --bots=6 --connect=nshost://127.0.0.1:7201 examples/rooms/game.lua; kill $!
--
-- Every client joins the lobby (one room for everyone), lists the open
-- "guess" matches with rooms.list, then joins one with join_or_create. A
-- guess match seats three players; it starts when full (or two seconds after
-- its second player) and locks, so late comers get a new match. The room
-- picks a number from 1 to 100; each player guesses, hears "higher" or
-- "lower", and the first to hit it wins. The match then closes, and its
-- players leave the lobby and quit.

if sys.runtime_role() == "server" then
  rooms.define("lobby", "rooms/lobby.lua", { max_clients = 256, auto_dispose = false })
  rooms.define("guess", "rooms/guess.lua", { max_clients = 3 })
end

local me            -- session id, told by the lobby
local lobby, match  -- room handles
local lo, hi = 1, 100
local started, waiting_answer = false, false

local function say(fmt, ...)
  print(("player %s: " .. fmt):format(tostring(me or "?"), ...))
end

local function join_match()
  rooms.list("guess", function(list, err)
    if not list then return say("cannot list matches: %s", err) end
    say("%d open match(es)", #list)
    for _, m in ipairs(list) do
      say("  match %d: %d/%d players, %s", m.id, m.clients, m.max_clients, tostring(m.metadata and m.metadata.phase))
    end
    rooms.join_or_create("guess", {}, function(r, join_err)
      if not r then return say("no match: %s", join_err) end
      match = r
      say("in match %d", r.id)
    end)
  end)
end

function client.connect()
  rooms.join_or_create("lobby", {}, function(r, err)
    if not r then
      print("no lobby: " .. tostring(err))
      return sys.quit(1)
    end
    lobby = r
    r:send("hello", {})
  end)
end

function client.room_message(r, kind, data)
  if lobby and r.id == lobby.id then
    if kind == "welcome" then
      me = data.id
      say("in the lobby with %d player(s)", data.players)
      join_match()
    end
    return
  end
  if kind == "start" then
    started = true
    say("match %d starts with %d players", r.id, data.players)
  elseif kind == "higher" then
    lo, waiting_answer = data.guess + 1, false
  elseif kind == "lower" then
    hi, waiting_answer = data.guess - 1, false
  elseif kind == "won" then
    say(data.winner == me and "won match %d (number %d)" or "lost match %d (number %d)", r.id, data.number)
  end
end

-- One guess every 10 ticks (a third of a second) once the match has begun,
-- anywhere in what is still possible.
function client.tick(tick_num)
  if match and started and not waiting_answer and tick_num % 10 == 0 then
    local guess = math.random(lo, hi)
    if match:send("guess", guess) then waiting_answer = true end
  end
end

function client.room_left(r, reason)
  if match and r.id == match.id then
    say("left match %d: %s", r.id, reason)
    match = nil
    if lobby then lobby:leave() end
    sys.quit(0)
  end
end
