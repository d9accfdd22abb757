-- Shard tests, tree "beta": what a client fetches when it hops here from
-- alpha (or starts from this shard's URL alone). Sends one reliable message
-- from server.connect, which the client may receive while still fetching.
local helper = require "helper"

function server.connect(c, handoff)
  print("beta server connect handoff=" .. handoff)
  send(c, "hello from beta server")
end

function server.disconnect(c, reason)
  print("beta server disconnect reason=" .. reason)
end

function client.connect(handoff)
  print(("beta connect handoff=%s sandboxed=%s %s"):format(handoff, tostring(sys.sandboxed()), helper.greeting("you")))
  local n = 0
  timer.every(0.02, function(t)
    n = n + 1
    print("beta timer " .. n)
    if n == 5 then t:cancel() end
  end)
end

function client.receive(data, channel)
  print(("beta receive %s on %s"):format(data, channel))
end

function client.disconnect(reason)
  print("beta disconnect: " .. reason)
end
