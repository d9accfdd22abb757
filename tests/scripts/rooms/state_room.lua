-- A state-sync test room (tests/integration/test_state_server.cpp). It has
-- no room.tick: the room ticks for its clients' patches all the same. Each
-- player's entity carries a distinctive secret the tests look for on the
-- wire. What a client's room.message asks is done to room.state or its view.
local secret = {}

function room.create(options)
  room.state.players = {}
  room.state.round = 1
  room.state.title = "state test"
  if room.type == "big" then room.state.blob = {} end
  if room.type == "typed" then
    room.define_state({
      round = "u16",
      title = "string",
      players = { map = { x = "f32", y = "f32", name = "string", secret = "string", inv = { map = "string" } } },
    })
    room.set_patch_rate(10)
  end
  print(("create %d %s"):format(room.id, room.type))
end

function room.join(c, options)
  secret[c.id] = "SECRET-" .. c.id .. "-" .. string.rep("s", 8)
  room.state.players[c.id] = { x = 0, y = 0, name = "p" .. c.id, secret = secret[c.id], inv = { "sword" } }
  if options.view == "self" then
    room.view(c):add(c.id)
  elseif options.view == "near" then
    -- Admits the players left of x = 100.
    room.set_view(c, function(collection, key, entity) return collection ~= "players" or entity.x < 100 end)
  end
  print(("join %d client %d"):format(room.id, c.id))
end

function room.leave(c, reason)
  room.state.players[c.id] = nil
end

function room.message(c, type, data)
  if type == "move" then
    local p = room.state.players[c.id]
    p.x, p.y = data.x, data.y
  elseif type == "show" then
    room.view(c):add(data)
  elseif type == "hide" then
    room.view(c):remove(data)
  elseif type == "blob" then
    -- data bytes of changing state per patch (the memory test)
    room.state.blob.text = string.rep(string.char(65 + data.n % 26), data.size)
  elseif type == "round" then
    room.state.round = data
  elseif type == "late_define" then
    local ok, err = pcall(room.define_state, { x = "u8" })
    room.send(c, "late_define", tostring(ok) .. " " .. tostring(err))
  elseif type == "bad_value" then
    room.state.players[c.id].x = "not a number"
  elseif type == "stats" then
    room.send(c, "stats", room.state_stats())
  end
end
