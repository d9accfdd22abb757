-- Round trips of a reliable message between a client and the server, for the
-- figure in docs/netcode.md ("Listen server"): under --role=host the local
-- client measures the in-process link, a --role=client joined to the same
-- host measures ENet over loopback. Each client sends one timestamped message
-- per tick, the server echoes it, and after N (default 300) round trips the
-- client prints "rtt <local|remote> n= p50_us= p99_us= max_us=" and quits.
local N = tonumber(os.getenv("N") or "300")

if sys.runtime_role() == "server" then
  function server.receive(c, data, channel) send(c, data, channel) end
  return
end

local tag = sys.is_listen_server() and "local" or "remote"
local samples = {}
local joined = false

function client.connect() joined = true end

function client.tick()
  if joined and #samples < N then send(string.pack("<d", sys.time())) end
end

function client.receive(data)
  samples[#samples + 1] = (sys.time() - string.unpack("<d", data)) * 1e6
  if #samples == N then
    table.sort(samples)
    local function at(q) return samples[math.max(1, math.ceil(q * N))] end
    print(("rtt %s n=%d p50_us=%.0f p99_us=%.0f max_us=%.0f"):format(tag, N, at(0.5), at(0.99), samples[N]))
    sys.quit()
  end
end
