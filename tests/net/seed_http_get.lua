-- Seed 001 "Example: Simple GET", in Lua (URL from URL instead of
-- https://api.example.com/data).
local req = 0

-- phase init
req = net.http_get(os.getenv("URL"))

local function tick(dt)
  if req ~= 0 then
    local resp = net.http_response(req)
    if resp ~= nil then
      if resp.status == 200 then
        local data = json.decode(resp.body)
        log.info("Got data:", data.name, data.n)
      else
        log.error("HTTP error:", resp.status)
      end
      req = 0
    end
  end
end

function server.tick(n, dt) tick(dt) end
function client.tick(n, dt) tick(dt) end
