-- Chat: reliable text messages relayed to everyone.
--
--   nshost --role=server examples/chat/game.lua
--   nshost --role=client --headless examples/chat/game.lua
--
-- A headless client says hello, then one line every two seconds; every client
-- prints each line it receives. CHAT_NAME and CHAT_LINES (environment) set
-- its name and how many lines it says before leaving (0: never leave).

local MAX_LINE_BYTES = 200

-- Server
local names = {}  -- slot -> name

function server.connect(c, handoff)
  names[slot(c)] = "player" .. slot(c)
  broadcast(names[slot(c)] .. " joined")
end

function server.disconnect(c, reason)
  local name = names[slot(c)]
  names[slot(c)] = nil
  broadcast(name .. " left (" .. reason .. ")")
end

function server.receive(c, data, channel)
  if #data > MAX_LINE_BYTES then
    send(c, "* line too long, not relayed")
    return
  end
  local name = data:match("^/nick (%w+)$")
  if name then
    broadcast(names[slot(c)] .. " is now " .. name)
    names[slot(c)] = name
    return
  end
  broadcast(names[slot(c)] .. ": " .. data)
end

-- Client
local my_name = os.getenv("CHAT_NAME") or ("guest" .. math.random(1000))
local lines_to_say = tonumber(os.getenv("CHAT_LINES") or "3")
local said, next_line_at = 0, 0

function client.connect(handoff)
  send("/nick " .. my_name)
  next_line_at = sys.time() + 0.5
end

function client.tick(tick_num, dt)
  if next_line_at == 0 or sys.time() < next_line_at then return end
  if lines_to_say > 0 and said >= lines_to_say then
    sys.quit()
    return
  end
  said = said + 1
  send(("hello #%d from %s"):format(said, my_name))
  next_line_at = sys.time() + 2
end

function client.receive(data, channel)
  print(data)
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
