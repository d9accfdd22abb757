-- Seed 001 "Example: Event Loop Pattern", in Lua. PORT (environment) is a
-- TCP echo peer; the connection is what produces the events.
net.tcp_connect("127.0.0.1", tonumber(os.getenv("PORT")))

local function tick(dt)
  for evt in net.events() do
    if evt.type == "connected" then log.info("Connected:", evt.handle)
    elseif evt.type == "data" then log.info("Received:", evt.data)
    elseif evt.type == "error" then log.error("Error:", evt.data)
    elseif evt.type == "closed" then log.info("Closed:", evt.handle)
    end
  end
end

function server.tick(n, dt) tick(dt) end
function client.tick(n, dt) tick(dt) end
