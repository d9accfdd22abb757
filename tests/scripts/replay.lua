-- Reliable delivery across a resume. The sender sends $PER_TICK numbered
-- reliable messages a tick ("n:<seq>") until it has sent $COUNT, then "end".
-- $DIRECTION=up: the client sends, the server checks; down: the reverse.
-- The receiver checks every message arrives exactly once and in order and
-- prints one summary line when "end" arrives; the sender prints how many
-- sends were refused (and the first refusal as it happens). $PROGRESS_EVERY
-- prints "progress <seq>" lines.
local COUNT = tonumber(os.getenv("COUNT") or "3000")
local PER_TICK = tonumber(os.getenv("PER_TICK") or "10")
local DIRECTION = os.getenv("DIRECTION") or "up"
local PROGRESS_EVERY = tonumber(os.getenv("PROGRESS_EVERY") or "300")

local function receiver(side)
  local st = { got = 0, next = 1, dups = 0, gaps = 0 }
  return function(data)
    if data == "end" then
      print(("%s summary got=%d next=%d dups=%d gaps=%d"):format(side, st.got, st.next, st.dups, st.gaps))
      return true
    end
    local n = tonumber(data:match("^n:(%d+)"))
    if not n then return false end
    st.got = st.got + 1
    if n == st.next then st.next = n + 1
    elseif n < st.next then st.dups = st.dups + 1
    else st.gaps = st.gaps + 1; st.next = n + 1 end
    if st.got % PROGRESS_EVERY == 0 then print(("%s progress %d"):format(side, st.got)) end
    return false
  end
end

-- Sends the next batch with `send_one`; true once "end" has gone out.
local function sender(side, send_one)
  local st = { seq = 0, refused = 0, ended = false, last_error = "" }
  return function()
    if st.ended then return true end
    for _ = 1, PER_TICK do
      if st.seq >= COUNT then break end
      local ok, err, code = send_one("n:" .. (st.seq + 1))
      if ok then st.seq = st.seq + 1
      else
        if st.refused == 0 then print(("%s first refusal: %s: %s"):format(side, tostring(code), tostring(err))) end
        st.refused = st.refused + 1
        st.last_error = tostring(code)
      end
    end
    if st.seq >= COUNT and send_one("end") then
      st.ended = true
      print(("%s sent=%d refused=%d last_error=%s"):format(side, st.seq, st.refused, st.last_error))
    end
    return st.ended
  end
end

local server_check = receiver("server")
local server_senders = {}

function server.connect(c)
  print(("connect slot=%d"):format(slot(c)))
  if DIRECTION == "down" then
    server_senders[c] = sender("server", function(data) return send(c, data) end)
  end
end

function server.receive(c, data)
  if DIRECTION == "up" then server_check(data) end
end

function server.tick()
  for _, step in pairs(server_senders) do step() end
end

function server.lost(c)
  print(("lost slot=%d"):format(slot(c)))
end

function server.resumed(c)
  print(("resumed slot=%d"):format(slot(c)))
end

function server.disconnect(c, reason, undelivered)
  print(("disconnect slot=%d reason=%s undelivered=%s"):format(slot(c), reason, tostring(undelivered)))
  server_senders[c] = nil
end

local client_check = receiver("client")
local joined = false
local client_step = sender("client", function(data) return send(data) end)

function client.connect(handoff, undelivered)
  print(("client joined undelivered=%s"):format(tostring(undelivered)))
  joined = true
end

function client.tick()
  if joined and DIRECTION == "up" then client_step() end
end

function client.receive(data)
  if DIRECTION == "down" then client_check(data) end
end

function client.lost()
  print("client lost")
end

function client.resumed()
  print("client resumed")
end

function client.disconnect(reason, undelivered)
  print(("disconnected: %s undelivered=%s"):format(reason, tostring(undelivered)))
end
