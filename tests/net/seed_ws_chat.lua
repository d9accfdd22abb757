-- Seed 001 "Example: WebSocket Chat", in Lua (URL from URL instead of
-- wss://chat.example.com/room).
local ws = 0

-- phase init
ws = net.ws_connect(os.getenv("URL"))

local function tick(dt)
  -- handle connection events
  for evt in net.events() do
    if evt.type == "connected" then
      log.info("WebSocket connected")
      net.ws_send(ws, "Hello, room!")
    elseif evt.type == "message" then
      log.info("Chat:", evt.data)
    elseif evt.type == "error" then
      log.error("WS error:", evt.data)
    elseif evt.type == "closed" then
      log.info("WebSocket closed")
      ws = 0
    end
  end
end

function server.tick(n, dt) tick(dt) end
function client.tick(n, dt) tick(dt) end
