-- WebSocket bridge: the server keeps one WebSocket connection to an outside
-- service and relays between it and its game clients. A line a client sends
-- goes to the service as "player<slot>: <line>"; every message from the
-- service is broadcast to all clients. If the service drops or cannot be
-- reached, the server says so to the clients and reconnects with backoff;
-- the game keeps ticking meanwhile.
--
--   BRIDGE_URL=wss://chat.example.org/room nshost --role=server examples/ws-bridge/game.lua
--   BRIDGE_LINES=3 nshost --role=client --headless examples/ws-bridge/game.lua
--
-- BRIDGE_URL (environment) is the service. A headless client named
-- BRIDGE_NAME sends BRIDGE_LINES lines (default 3) one second apart, prints
-- what it receives and leaves once it has heard all of its own lines back.

local MAX_LINE_BYTES = 1000

-- Server
local url = os.getenv("BRIDGE_URL") or "ws://127.0.0.1:8765/"
local ws = 0
local backoff_s = 1
local outbox = {}  -- lines from clients while the service is down (bounded)

local function connect()
  ws = net.ws_connect(url)
  log.info("bridge: connecting to " .. url)
end

local function lost(why)
  log.warn("bridge: " .. why .. "; retrying in " .. backoff_s .. " s")
  broadcast("* bridge down: " .. why)
  net.close(ws)
  ws = 0
  timer.after(backoff_s, connect)
  backoff_s = math.min(backoff_s * 2, 30)
end

function server.receive(c, data, channel)
  if #data > MAX_LINE_BYTES then
    send(c, "* line too long, not bridged")
    return
  end
  local line = "player" .. c.id .. ": " .. data
  if net.status(ws) == "connected" then
    local ok, err, code = net.ws_send(ws, line)
    if not ok then send(c, "* not bridged: " .. code .. ": " .. err) end
  elseif #outbox < 100 then
    outbox[#outbox + 1] = line
  else
    send(c, "* bridge down and its queue is full; line dropped")
  end
end

if sys.runtime_role() == "server" then timer.after(0.001, connect) end

function server.tick(tick_num)
  for evt in net.events() do
    if evt.handle == ws then
      if evt.type == "connected" then
        log.info("bridge: connected")
        broadcast("* bridge up")
        backoff_s = 1
        for _, line in ipairs(outbox) do net.ws_send(ws, line) end
        outbox = {}
      elseif evt.type == "message" then
        broadcast(evt.data)
      elseif evt.type == "error" then
        lost(evt.data)
      elseif evt.type == "closed" then
        lost("the service closed the connection")
      end
    end
  end
end

function server.shutdown()
  net.ws_close(ws)
end

-- Client
local lines = tonumber(os.getenv("BRIDGE_LINES") or "3")
local name = os.getenv("BRIDGE_NAME") or ("guest" .. math.random(1000))
local said, heard = 0, 0
local talking  -- the timer.every handle while connected

local function say_next(t)
  if said >= lines then
    t:cancel()
    return
  end
  said = said + 1
  send(("%s says line %d of %d"):format(name, said, lines))
end

function client.connect(handoff)
  if talking then talking:cancel() end
  timer.after(0.2, function(t)
    say_next(t)
    talking = timer.every(1, say_next)
  end)
end

function client.receive(data, channel)
  print(data)
  if data:find(name .. " says line", 1, true) then
    heard = heard + 1
    if heard >= lines then sys.quit() end
  end
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
