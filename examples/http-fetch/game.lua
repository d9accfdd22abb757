-- HTTP fetch: the server fetches a JSON document once at startup (net.http_get
-- + json.decode) and serves it to every client that joins; clients print it.
-- The fetch never blocks the game loop: the server ticks and admits players
-- while the request is in flight, and tells early joiners when it lands.
--
--   FETCH_URL=https://example.org/data.json nshost --role=server examples/http-fetch/game.lua
--   nshost --role=client --headless examples/http-fetch/game.lua
--
-- FETCH_URL (environment) is the document to fetch. FETCH_INSECURE=1 skips
-- TLS certificate checks (for a local test server only).

-- Server
local url = os.getenv("FETCH_URL") or "http://127.0.0.1:8000/data.json"
local document         -- the decoded JSON once fetched
local document_text    -- what clients are sent: the re-encoded document or an error
local request          -- the handle while the fetch is in flight

if os.getenv("FETCH_INSECURE") == "1" then net.configure{tls_verify = false} end

local function announce(text)
  document_text = text
  broadcast(text)
end

-- Only the server fetches; this chunk runs in both roles.
if sys.runtime_role() == "server" then
  request = net.http_get(url)
  log.info("fetching " .. url)
end

function server.connect(c, handoff)
  send(c, document_text or "document: still fetching")
end

function server.tick(tick_num)
  if not request then return end
  local resp = net.http_response(request)
  if not resp then return end  -- pending: keep ticking
  net.close(request)
  request = false
  if resp.error then
    log.error("fetch failed: " .. resp.error)
    announce("document: unavailable (" .. resp.error .. ")")
  elseif resp.status ~= 200 then
    log.error("fetch answered HTTP " .. resp.status)
    announce("document: unavailable (HTTP " .. resp.status .. ")")
  else
    local value, err = json.decode(resp.body)
    if value == nil then
      log.error("fetched body is not JSON: " .. err)
      announce("document: unavailable (not JSON: " .. err .. ")")
    else
      document = value
      log.info(("fetched %d bytes of JSON"):format(#resp.body))
      announce("document: " .. json.encode(document))
    end
  end
end

-- Client
function client.receive(data, channel)
  print(data)
  if data:find("^document: [{%[]") or data:find("^document: unavailable") then sys.quit() end
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
