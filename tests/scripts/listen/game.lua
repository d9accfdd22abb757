-- The script of tests/integration/test_listen_server.cpp: one file for the
-- server, the local client of a listen server (--role=host) and a remote
-- client. Each state prints its lines with a tag: "S" (server), "local"
-- (the host's client) or "remote". The clients join the room "arena" and
-- report what state sync shows of each other; the remote client's "seen"
-- makes the server tell the local client to quit, and once the remote sees
-- it gone it sends "after" (is it still served?). With FLOOD=1 the local
-- client asks for "flood": the server sends it ten 60000-byte messages in one
-- handler, more than the in-process link holds undelivered (4 x
-- --max-message-size); the client reports what arrived and sends "again".
-- With LOCAL_END=kick or redirect the server kicks the local client, or
-- redirects it to another shard, as soon as it says hello.
local role = sys.runtime_role()
local listen = sys.is_listen_server()
local tag = role == "server" and "S" or (listen and "local" or "remote")
local X = { ["local"] = 1, remote = 2 }

local function say(s) print(tag .. " " .. s) end

say(("role=%s listen=%s"):format(role, tostring(listen)))

if role == "server" then
  rooms.define("arena", "arena.lua", { max_clients = 8 })
  local names = {}

  function server.auth(token, project_id, address)
    say("auth " .. tostring(token) .. " from " .. address)
  end

  function server.connect(c, handoff)
    say(("connect %d listen=%s"):format(c.id, tostring(sys.is_listen_server())))
  end

  function server.receive(c, data, channel)
    say(("receive %d %s %s"):format(c.id, data, channel))
    local name = data:match("^hello (%w+)$")
    if name then names[name] = c end
    local local_end = os.getenv("LOCAL_END")
    if name == "local" and local_end == "kick" then
      say("kick " .. tostring(kick(c, "bye")))
      return
    elseif name == "local" and local_end == "redirect" then
      say("redirect " .. tostring(redirect(c, "nshost://127.0.0.1:9")))
      return
    end
    if data == "seen" and names["local"] then
      say("send quit " .. tostring(send(names["local"], "quit")))
    end
    if data == "flood" then
      local accepted, refused, code = 0, 0, nil
      local big = string.rep("b", 60000)
      for _ = 1, 10 do
        local ok, _, why = send(c, big)
        if ok then accepted = accepted + 1 else refused, code = refused + 1, why end
      end
      say(("flood accepted=%d refused=%d %s"):format(accepted, refused, tostring(code)))
    end
    send(c, "echo " .. data, channel)
  end

  function server.disconnect(c, reason)
    say(("disconnect %d %s"):format(c.id, reason))
  end

  function server.shutdown()
    say("shutdown")
  end
else
  local seen, gone = false, false
  local bigs = 0

  local function others(state, want)
    local players = state and state.players
    if not players then return false end
    for _, p in pairs(players) do
      if p.name == want then return p end
    end
    return false
  end

  function client.connect(handoff)
    say("connected")
    send("hello " .. tag, "reliable")
    send("ping " .. tag, "unreliable")
    if listen and os.getenv("FLOOD") == "1" then send("flood") end
    rooms.join_or_create("arena", { name = tag }, function(r, err, code)
      if not r then
        say("join failed " .. tostring(err) .. " " .. tostring(code))
        return
      end
      say("joined")
      r:send("move", { x = X[tag] })
    end)
  end

  function client.receive(data, channel)
    if #data == 60000 then
      bigs = bigs + 1
      say("got big " .. bigs)
      if bigs == 4 then send("again") end
      return
    end
    say("got " .. data .. " " .. channel)
    if data == "quit" then
      say("quitting")
      sys.quit()
    end
  end

  function client.room_state(r, state)
    local me = others(state, tag)
    local other = others(state, tag == "local" and "remote" or "local")
    if not seen and me and other and me.x == X[tag] and other.x == X[other.name] then
      seen = true
      say(("sees %s x=%d and %s x=%d"):format(me.name, me.x, other.name, other.x))
      if tag == "remote" then send("seen") end
    elseif seen and not gone and not other then
      gone = true
      say("sees the other gone")
      send("after")
    end
  end

  function client.disconnect(reason)
    say("disconnect " .. reason)
  end
end
