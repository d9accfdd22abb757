-- The cluster integration tests (tests/integration/test_cluster_rooms.cpp):
-- one tree for servers and clients, so a transferred client keeps its state.
-- Server: room type "arena" (4 seats). Client: ACTION says what it does,
-- NAME tags its lines:
--   create          rooms.create("arena"), then stays and reports messages
--   join_or_create  rooms.join_or_create("arena"), then says hello in the room
--   join            rooms.join(ROOM), then says hello in the room
--   list_until      rooms.list every 100 ms until ROOM is listed ("listed")
--                   or, with GONE=1, until it is not ("unlisted")
if sys.runtime_role() == "server" then
  rooms.define("arena", "arena.lua", { max_clients = 4, tick_rate = 20 })
  return
end

local name = os.getenv("NAME") or "c"
local action = os.getenv("ACTION") or "create"
local wanted = tonumber(os.getenv("ROOM") or "0")
local gone = os.getenv("GONE") == "1"
local connects = 0

local function say(s) print(name .. " " .. s) io.stdout:flush() end

local function joined(r, err, code)
  if not r then
    say("join failed " .. tostring(err) .. " " .. tostring(code))
    return
  end
  say(("joined room=%d type=%s connects=%d session=%d"):format(r.id, r.type, connects, rooms.session_id()))
  if action ~= "create" then r:send("chat", { from = name }) end
end

local function list_once()
  rooms.list(nil, function(list, err)
    if not list then
      say("list failed " .. tostring(err))
      return
    end
    local seen = false
    for _, room in ipairs(list) do
      if room.id == wanted then seen = true end
    end
    if seen ~= gone then
      say((gone and "unlisted" or "listed") .. " rooms=" .. #list)
    else
      timer.after(0.1, list_once)
    end
  end)
end

function client.connect()
  connects = connects + 1
  say("connected " .. connects)
  if action == "create" then rooms.create("arena", {}, joined)
  elseif action == "join_or_create" then rooms.join_or_create("arena", {}, joined)
  elseif action == "join" then rooms.join(wanted, {}, joined)
  elseif action == "list_until" then list_once()
  end
end

function client.room_message(r, type, data)
  if type == "tick" then
    say("tick " .. tostring(data))
  else
    say(("message room=%d type=%s from=%s"):format(r.id, type, tostring(type == "chat" and data.from or data.id)))
  end
end

function client.room_left(r, reason) say("left room=" .. r.id .. " " .. reason) end

function client.disconnect(reason) say("disconnected " .. reason) end
