-- The client of the end-to-end rooms tests in
-- tests/integration/test_rooms_client.cpp, against tests/scripts/rooms/server.lua.
-- NAME tags its lines. MODE=pair: join "arena" (WAIT_FOR_PEER=1: go on only
-- once another client joined too), echo, broadcast bytes, list, leave, quit.
-- MODE=close: join, ask the room to close, report the stale handle, join
-- again and stay until the server goes.
local name = os.getenv("NAME") or "c"
local mode = os.getenv("MODE") or "pair"
local wait_for_peer = os.getenv("WAIT_FOR_PEER") == "1"

local function say(s) print(name .. " " .. s) io.stdout:flush() end

local function render(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if math.type(v) == "float" then return ("%.17gf"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. render(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

local room
local started = false

local function go_on()
  if started then return end
  started = true
  say("sent echo " .. tostring(room:send("echo", { n = 1, f = 2.5, s = "hi", list = { 1, 2, 3 } })))
end

function client.connect()
  say(("connected session=%d codec=%s"):format(rooms.session_id(), rooms.codec()))
  rooms.join_or_create("arena", { metadata = { map = "dust" } }, function(r, err, code)
    if not r then
      say("join failed " .. tostring(err) .. " " .. tostring(code))
      return
    end
    room = r
    say("joined " .. tostring(r))
    if mode == "close" then
      r:send("close", "bye")
    elseif not wait_for_peer then
      go_on()
    end
  end)
end

function client.room_message(r, t, data)
  if t == "joined" then
    say("saw joined clients=" .. tostring(data.clients))
    go_on()
  elseif t == "echo" then
    say("echo " .. render(data))
    say("sent bytes " .. tostring(r:send_bytes("bytes", name .. "\0\1\255")))
  elseif t == "bytes" then
    say("bytes " .. hex(data))
    if data == name .. "\0\1\255" then
      rooms.list("arena", function(list, err)
        local entry = list and list[1]
        say(("list n=%d id=%s clients=%s max=%s map=%s"):format(list and #list or -1, tostring(entry and entry.id),
          tostring(entry and entry.clients), tostring(entry and entry.max_clients),
          tostring(entry and entry.metadata and entry.metadata.map)))
        say("leave " .. tostring(r:leave(function(ok, why, code)
          say("left " .. tostring(ok) .. " " .. tostring(why) .. " " .. tostring(code))
          sys.quit()
        end)))
      end)
    end
  end
end

function client.room_left(r, reason)
  say("room_left " .. tostring(r) .. " " .. reason)
  if mode == "close" and reason ~= "disconnected" then
    say("after close " .. table.concat({ tostring(select(2, r:send("x", 1))), tostring(select(3, r:send("x", 1))) }, " "))
    rooms.join_or_create("arena", nil, function(r2, err)
      say("joined again " .. tostring(r2) .. " " .. tostring(err))
    end)
  end
end

function client.disconnect(reason)
  say("disconnect " .. reason)
end
