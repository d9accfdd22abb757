-- Served to a client started from a URL alone (tests/bindings/test_net_fetched.cpp):
-- the server tells the fetched script which loopback ports to try, and the
-- fetched script prints what net let it do.
function server.connect(c)
  send(c, os.getenv("NET_PORTS"))
end

local conns = {}

local function report(label, h, err, code)
  print(("fetched %s h=%s code=%s err=%s"):format(label, tostring(h), tostring(code), tostring(err)))
end

function client.receive(data)
  local allowed, other = data:match("^(%d+),(%d+)$")
  allowed, other = tonumber(allowed), tonumber(other)
  local h, err, code = net.tcp_connect("127.0.0.1", allowed)
  report("allowed", h, err, code)
  if h then conns[h] = "allowed" end
  report("other", net.tcp_connect("127.0.0.1", other))
  report("listen", net.tcp_listen(47999, "0.0.0.0"))
  print("fetched tried")
end

function client.tick()
  for evt in net.events() do
    print(("fetched event %s %s %s"):format(conns[evt.handle] or "?", evt.type, tostring(evt.data)))
  end
end
