-- Seed 001 "Example: TCP Client", in Lua (port from PORT instead of 8080).
local conn = 0

-- phase init
conn = net.tcp_connect("127.0.0.1", tonumber(os.getenv("PORT")))

local function tick(dt)
  local evt = net.poll_event()
  while evt do
    if evt.type == "connected" then
      log.info("Connected to server")
      net.tcp_send(conn, "hello\n")
    elseif evt.type == "data" then
      log.info("Server says:", evt.data)
    elseif evt.type == "error" then
      log.error("Connection error:", evt.data)
    end
    evt = net.poll_event()
  end
end

function server.tick(n, dt) tick(dt) end
function client.tick(n, dt) tick(dt) end
