-- Shard tests, tree "alpha" (run from disk, not sandboxed).
-- Server: prints its events; with REDIRECT_TO set, redirects every client
-- there with the handoff "from-alpha".
-- Client: counts its joins in a variable that only survives a same-tree hop;
-- on its first join hops to HOP_TO (handoff HOP_HANDOFF, or HOP_HANDOFF_BYTES
-- bytes of "x"); after a failed hop prints from tick that it is alive and,
-- with RETRY_TO set, hops there. With ALPHA_TIMER set, its first join starts
-- a timer.every that prints "alpha timer" (it dies with this state).
local visits = 0
local failed = false
local said_alive = false

function server.connect(c, handoff)
  print(("server connect slot=%d handoff=%s"):format(slot(c), handoff))
  local to = os.getenv("REDIRECT_TO")
  if to then print("redirect returned " .. tostring(redirect(c, to, "from-alpha"))) end
end

function server.disconnect(c, reason)
  print("server disconnect reason=" .. reason)
end

function client.connect(handoff)
  visits = visits + 1
  print(("alpha connect visits=%d handoff=%s"):format(visits, handoff))
  if visits == 1 and os.getenv("ALPHA_TIMER") then
    timer.every(0.02, function() print("alpha timer") end)
  end
  local to = os.getenv("HOP_TO")
  if to and visits == 1 then
    local bytes = tonumber(os.getenv("HOP_HANDOFF_BYTES") or "")
    local handoff_out = bytes and ("x"):rep(bytes) or (os.getenv("HOP_HANDOFF") or "carry")
    print("hop returned " .. tostring(hop(to, handoff_out)))
  end
end

function client.disconnect(reason)
  print("alpha disconnect: " .. reason)
  if reason:find("^hop_failed") then failed = true end
end

function client.tick(n)
  if failed and not said_alive then
    said_alive = true
    print("alive after hop_failed, tick " .. n)
    local retry = os.getenv("RETRY_TO")
    if retry then
      failed = false
      print("retry returned " .. tostring(hop(retry, "retry")))
    end
  end
end
