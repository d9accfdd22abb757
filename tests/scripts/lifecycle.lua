-- Server: keeps the first client's handle and, when a later client joins,
-- reports what the builtins do with it. Client: prints its events; quits
-- right after joining when QUIT_AFTER_JOIN is set.
local first

function server.connect(c, handoff)
  print(("connect slot=%d handoff=%q"):format(slot(c), handoff))
  if not first then
    first = c
    return
  end
  for _, name in ipairs({ "slot", "send", "kick" }) do
    local fn = _ENV[name]
    local ok, err = pcall(fn, first, "x")
    print(("%s(first) ok=%s err=%s"):format(name, tostring(ok), tostring(err)))
  end
  print(("connected(first)=%s same=%s first=%s c=%s"):format(tostring(connected(first)), tostring(first == c),
    tostring(first), tostring(c)))
end

function server.disconnect(c, reason)
  print(("disconnect slot=%d reason=%s connected=%s"):format(slot(c), reason, tostring(connected(c))))
end

function server.shutdown()
  print("shutdown handler ran")
end

function client.connect(handoff)
  print("joined max_clients=" .. max_clients())
  if os.getenv("QUIT_AFTER_JOIN") then sys.quit() end
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
