-- Counts and orders messages over a shaped link. The client sends $COUNT
-- numbered messages on each channel (100 per tick), then "done" (reliable).
-- The server checks every reliable one arrives exactly once and in order,
-- that unreliable ones never arrive out of order, and echoes each reliable
-- one back; the client checks the echoes the same way.
local COUNT = tonumber(os.getenv("COUNT") or "3000")

local function checker(name)
  return { name = name, next = 1, dups = 0, gaps = 0, got = 0 }
end

local function check_reliable(st, n)
  st.got = st.got + 1
  if n == st.next then st.next = n + 1
  elseif n < st.next then st.dups = st.dups + 1
  else st.gaps = st.gaps + 1; st.next = n + 1 end
end

local server_rel, server_unrel = checker("reliable"), { last = 0, got = 0, out_of_order = 0 }

function server.receive(c, data, channel)
  if data == "done" then
    print(("server reliable got=%d expected=%d next=%d dups=%d gaps=%d"):format(server_rel.got, COUNT,
      server_rel.next, server_rel.dups, server_rel.gaps))
    print(("server unreliable got=%d out_of_order=%d"):format(server_unrel.got, server_unrel.out_of_order))
    send(c, "done")
    return
  end
  local n = tonumber(data)
  if channel == "reliable" then
    check_reliable(server_rel, n)
    send(c, data)
  else
    server_unrel.got = server_unrel.got + 1
    if n <= server_unrel.last then server_unrel.out_of_order = server_unrel.out_of_order + 1 end
    server_unrel.last = n
  end
end

local sent, joined = 0, false
local client_rel = checker("echo")

function client.connect()
  joined = true
end

function client.tick()
  if not joined or sent >= COUNT then return end
  for _ = 1, 100 do
    if sent >= COUNT then break end
    sent = sent + 1
    send(tostring(sent), "reliable")
    send(tostring(sent), "unreliable")
  end
  if sent >= COUNT then send("done", "reliable") end
end

function client.receive(data)
  if data == "done" then
    print(("client echo got=%d expected=%d next=%d dups=%d gaps=%d"):format(client_rel.got, COUNT,
      client_rel.next, client_rel.dups, client_rel.gaps))
    sys.quit()
    return
  end
  check_reliable(client_rel, tonumber(data))
end

function client.disconnect(reason)
  print("disconnected: " .. reason)
end
