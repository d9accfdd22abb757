-- The bot side of every bench workload (required by relay.lua and crowd.lua;
-- run with `nshost --role=client --bots=N`). Each bot walks, sends its
-- position (i16 x, i16 y) on the unreliable channel every tick, pings on the
-- reliable channel once a second, and counts the snapshots it receives.
-- Counting happens only in the window [BENCH_START, BENCH_START+BENCH_WINDOW]
-- of sys.time() (seconds since the process started, shared by every bot of
-- the process); at its end the bot prints one line and leaves:
--   bench snaps=<n> entries=<n> max_entries=<n> ticks=<n> rtt_ms=<r1,r2,...>
-- where ticks spans the first to the last tick number it received in the
-- window: ticks - snaps snapshots of that span never arrived.
-- Without BENCH_WINDOW the bot runs until stopped and prints nothing.
local M = {}

local pack, unpack = string.pack, string.unpack
local HEADER_BYTES = string.packsize("<I4I2")
local ENTRY_BYTES = string.packsize("<I2i2i2")

function M.install(opts)
  local window_start = tonumber(os.getenv("BENCH_START") or "0")
  local window_s = tonumber(os.getenv("BENCH_WINDOW") or "")
  local window_end = window_s and window_start + window_s or math.huge
  local map_side = opts.map_side            -- function(max_clients) -> side, or nil for a circle walk
  local snaps, entries, max_entries, rtts = 0, 0, 0, {}
  local first_tick, last_tick
  local x, y, vx, vy, side
  local next_ping, done = 0, false

  local function in_window(t) return t >= window_start and t < window_end end

  function client.connect()
    if map_side then
      side = map_side(max_clients())
      x, y = math.random(0, side - 1), math.random(0, side - 1)
      local a = math.random() * 2 * math.pi
      vx, vy = 60 * math.cos(a), 60 * math.sin(a)  -- map units per second
    else
      x, y = math.random(-1000, 1000), math.random(-1000, 1000)
      vx, vy = 0, 0
    end
    next_ping = sys.time() + math.random()
  end

  function client.tick(tick_num, dt)
    if done or not x then return end
    local now = sys.time()
    if now >= window_end then
      done = true
      local ticks = first_tick and last_tick - first_tick + 1 or 0
      print(("bench snaps=%d entries=%d max_entries=%d ticks=%d rtt_ms=%s"):format(
        snaps, entries, max_entries, ticks, table.concat(rtts, ",")))
      sys.quit(0)
      return
    end
    if side then
      if math.random() < 0.02 then
        local a = math.random() * 2 * math.pi
        vx, vy = 60 * math.cos(a), 60 * math.sin(a)
      end
      x, y = x + vx * dt, y + vy * dt
      if x < 0 or x >= side then vx = -vx; x = math.max(0, math.min(side - 1, x)) end
      if y < 0 or y >= side then vy = -vy; y = math.max(0, math.min(side - 1, y)) end
    else
      x, y = x + math.random(-1, 1), y + math.random(-1, 1)
    end
    send(pack("<i2i2", math.floor(x), math.floor(y)), "unreliable")
    if now >= next_ping then
      next_ping = next_ping + 1
      send(pack("<d", now), "reliable")
    end
  end

  function client.receive(data, channel)
    local now = sys.time()
    if channel == "reliable" then
      if #data == 8 then
        local sent = unpack("<d", data)
        if in_window(sent) and now < window_end then rtts[#rtts + 1] = ("%.2f"):format((now - sent) * 1000) end
      end
      return
    end
    if not in_window(now) or #data < HEADER_BYTES then return end
    local tick, count = unpack("<I4I2", data)
    if #data ~= HEADER_BYTES + count * ENTRY_BYTES then return end
    if not first_tick or tick < first_tick then first_tick = tick end
    if not last_tick or tick > last_tick then last_tick = tick end
    snaps = snaps + 1
    entries = entries + count
    if count > max_entries then max_entries = count end
  end

  function client.disconnect(reason)
    if not done and window_s then print("bench disconnected: " .. reason) end
  end
end

return M
