-- Seed 001 "Example: TCP Server", in Lua (port from PORT instead of 9000;
-- PORT=0 picks a free one, reported by net.tcp_port).
local server_handle = 0
local clients = {}

-- phase init
server_handle = net.tcp_listen(tonumber(os.getenv("PORT")), "127.0.0.1")
log.info("Listening on port " .. net.tcp_port(server_handle))

local function tick(dt)
  for evt in net.events() do
    if evt.type == "accepted" then
      clients[#clients + 1] = evt.data
      log.info("Client connected:", evt.data)
      net.tcp_send(evt.data, "welcome\n")
    elseif evt.type == "data" then
      log.info("Client", evt.handle, "says:", evt.data)
    elseif evt.type == "closed" then
      log.info("Client disconnected:", evt.handle)
    end
  end
end

function server.tick(n, dt) tick(dt) end
function client.tick(n, dt) tick(dt) end
