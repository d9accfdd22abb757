-- Chat: reliable text messages relayed to everyone.
--
--   nshost --role=server examples/chat/game.lua
--   nshost --role=client --headless examples/chat/game.lua
--
-- A headless client says hello, then one line every two seconds; every client
-- prints each line it receives. CHAT_NAME and CHAT_LINES (environment) set
-- its name and how many lines it says before leaving (0: never leave).

local MAX_LINE_BYTES = 200

-- Server: names by session id (c.id is never reused; a slot is, at once,
-- so a table by slot would hand a leaver's name to the next joiner).
local names = {}  -- c.id -> name

function server.connect(c, handoff)
  names[c.id] = "player" .. c.id
  broadcast(names[c.id] .. " joined")
end

function server.disconnect(c, reason)
  local name = names[c.id]
  names[c.id] = nil
  broadcast(name .. " left (" .. reason .. ")")
end

function server.receive(c, data, channel)
  if #data > MAX_LINE_BYTES then
    send(c, "* line too long, not relayed")
    return
  end
  local name = data:match("^/nick (%w+)$")
  if name then
    broadcast(names[c.id] .. " is now " .. name)
    names[c.id] = name
    return
  end
  broadcast(names[c.id] .. ": " .. data)
end

-- Client
local my_name = os.getenv("CHAT_NAME") or ("guest" .. math.random(1000))
local lines_to_say = tonumber(os.getenv("CHAT_LINES") or "3")
local said = 0
local talking  -- the timer.every handle while connected

local function say_next()
  if lines_to_say > 0 and said >= lines_to_say then
    sys.quit()
    return
  end
  said = said + 1
  send(("hello #%d from %s"):format(said, my_name))
end

function client.connect(handoff)
  send("/nick " .. my_name)
  if talking then talking:cancel() end
  timer.after(0.5, function()
    say_next()
    talking = timer.every(2, say_next)
  end)
end

function client.receive(data, channel)
  print(data)
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
