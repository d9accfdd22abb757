-- The arena's client (required by server.lua in the client role). Headless
-- (--headless, --bots=N) it is a bot on a random walk that prints metric
-- lines for bench/netcode.py; in a terminal it is a person: WASD or the
-- arrow keys move, q quits, and the arena is drawn as text at the tick rate.
--
-- Its own player is predicted (nshost.predict): each input goes through the
-- shared step at once, is sent with the last few unacked ones (nshost.input),
-- and each "pos" message (the room's unreliable positions of its tick)
-- rewinds to the server's position for the last applied input and replays
-- the rest. Other players are drawn between two received ticks, a render
-- delay behind (nshost.interp). Time dilation keeps the room's input buffer
-- at its target depth. The room's state (state sync) gives the scores and
-- who is "it".
local input = require("nshost.input")
local predict = require("nshost.predict")
local interp = require("nshost.interp")
local arena = require("step")

local function env(name) return not sys.sandboxed() and os.getenv(name) or nil end
local SECONDS = tonumber(env("ARENA_SECONDS"))        -- quit after this many seconds (bots in tests, the bench)
local REDUNDANCY = tonumber(env("ARENA_REDUNDANCY")) or 4
local LATE_TICK_S = 2.5 * arena.DT  -- a client tick later than this is reported (headless)
local HOLD_S = 0.3   -- a key press moves for this long; the terminal's key repeat keeps it going

set_tick_rate(arena.TICK_RATE)

local person = term ~= nil and not sys.is_headless()
if person then
  local ok, err = term.open()
  if not ok then
    log.warn("arena: " .. tostring(err) .. ": playing as a bot (no keyboard)")
    person = false
  else
    local cols, rows = term.size()
    if cols and (cols < arena.WIDTH + 2 or rows < arena.HEIGHT + 3) then
      log.warn(("arena: the terminal is %dx%d; the arena needs %dx%d"):format(cols, rows, arena.WIDTH + 2,
        arena.HEIGHT + 3))
    end
  end
end
local metrics = not person

local r           -- the room handle
local me          -- this client's session id: its key in state.players
local sender, dilation, prediction, view
local it, my_score = 0, 0
local pos_tick = -1        -- the newest "pos" tick taken: an older or repeated one is dropped
local pos_counts = { taken = 0, stale = 0, malformed = 0 }
local held = { dx = 0, dy = 0, x_until = 0, y_until = 0 }
local walk = { dx = 0, dy = 0, until_s = 0 }
local next_report = 0

local function leave_terminal()
  if person and term.close() then
    term.write("\27[0m\27[?25h\n")
  end
end

local quitting = false

local function quit(code)
  quitting = true
  leave_terminal()
  sys.quit(code)
end

if SECONDS then timer.after(SECONDS, function() quit(0) end) end

function client.connect()
  rooms.join_or_create("arena", {}, function(room, err)
    if not room then
      log.warn("arena: cannot join: " .. tostring(err))
      return quit(1)
    end
    r, me = room, rooms.session_id()
    sender = input.sender({ fields = arena.FIELDS, redundancy = REDUNDANCY })
    dilation = input.dilation({ tick_rate = arena.TICK_RATE, target_depth = 2, max = 0.05, gain = 0.05 })
    view = interp.new({ tick_rate = arena.TICK_RATE })
    prediction = nil  -- made from the first "pos" that shows this player
    pos_tick = -1
    if metrics then
      print(("netcode config tick_move=%.6f redundancy=%d tick_rate=%d"):format(arena.TICK_MOVE, REDUNDANCY,
        arena.TICK_RATE))
    end
  end)
end

-- While the link is down nothing reaches the room: make no inputs (the
-- prediction would run away from a player the room holds still).
local link_down = false
function client.lost() link_down = true end
function client.resumed() link_down = false end

function client.disconnect(reason)
  if reason ~= "left" then log.info("arena: disconnected: " .. tostring(reason)) end
  leave_terminal()
end

function client.room_state(room, state)
  if room ~= r then return end
  local mine = state.players[me]
  if mine then my_score = mine.score end
  it = state.it
end

-- The room's positions of one tick (unreliable, sequenced by ENet; a tick
-- not newer than the last one taken is dropped here too).
local function on_positions(bytes, now)
  local tick, players = arena.unpack_positions(bytes)
  if not tick then
    pos_counts.malformed = pos_counts.malformed + 1
    if pos_counts.malformed == 1 then log.warn("arena: a bad pos message: " .. tostring(players)) end
    return
  end
  if tick <= pos_tick then
    pos_counts.stale = pos_counts.stale + 1
    return
  end
  pos_tick = tick
  pos_counts.taken = pos_counts.taken + 1
  local others = {}
  for _, p in ipairs(players) do
    if p.id ~= me then
      others[p.id] = { x = p.x, y = p.y }
    elseif not prediction then
      prediction = predict.new({
        step = arena.step, state = { x = p.x, y = p.y }, dt = arena.DT, fields = { "x", "y" },
        smooth_below = 3 * arena.TICK_MOVE, smooth_frames = 4,
      })
      dilation:observe(p.depth)
    else
      if p.ack > 0 then
        sender:ack(p.ack)
        local err = prediction:reconcile({ x = p.x, y = p.y }, p.ack)
        if err and metrics then print(("netcode err=%.6f seq=%d t=%.3f"):format(err, p.ack, now)) end
      end
      dilation:observe(p.depth)
    end
  end
  view:push(tick, others, now)
end

function client.room_message(room, kind, data)
  if room == r and kind == "pos" and type(data) == "string" then on_positions(data, sys.time()) end
end

local KEYS = {
  w = { "y", -1 }, up = { "y", -1 }, s = { "y", 1 }, down = { "y", 1 },
  a = { "x", -1 }, left = { "x", -1 }, d = { "x", 1 }, right = { "x", 1 },
}

-- The keys typed since the last tick: each press of a direction moves that
-- way for HOLD_S seconds (a terminal has no key-up).
local function read_keys(now)
  for _, key in ipairs(term.keys()) do
    key = key:lower()
    if key == "q" then return quit(0) end
    local k = KEYS[key]
    if k and k[1] == "x" then
      held.dx, held.x_until = k[2], now + HOLD_S
    elseif k then
      held.dy, held.y_until = k[2], now + HOLD_S
    end
  end
end

local function keyboard_cmd(now)
  return { dx = now < held.x_until and held.dx or 0, dy = now < held.y_until and held.dy or 0 }
end

local function walk_cmd(now)
  if now >= walk.until_s then
    walk.dx, walk.dy = math.random(-1, 1), math.random(-1, 1)
    walk.until_s = now + 0.3 + math.random() * 1.5
  end
  return { dx = walk.dx, dy = walk.dy }
end

local MARKS = "abcdefghijklmnopqrstuvwxyz"

local function draw(drawn)
  local grid = {}
  for y = 1, arena.HEIGHT do
    local row = {}
    for x = 1, arena.WIDTH do row[x] = "." end
    grid[y] = row
  end
  local function put(x, y, mark)
    local col, line = math.floor(x + 0.5) + 1, math.floor(y + 0.5) + 1
    if grid[line] and grid[line][col] then grid[line][col] = mark end
  end
  for id, p in pairs(drawn) do
    local i = id % #MARKS + 1
    local mark = MARKS:sub(i, i)
    put(p.x, p.y, id == it and mark:upper() or mark)
  end
  local shown = prediction:render()
  put(shown.x, shown.y, "@")
  local status = it == me and "you are IT: tag someone" or "run: the capital letter is it"
  local lines = {
    ("arena  room %d  you @ score %d  %s  (WASD/arrows move, q quits)"):format(r.id, my_score, status),
    "+" .. ("-"):rep(arena.WIDTH) .. "+",
  }
  for y = 1, arena.HEIGHT do lines[#lines + 1] = "|" .. table.concat(grid[y]) .. "|" end
  lines[#lines + 1] = "+" .. ("-"):rep(arena.WIDTH) .. "+"
  term.write("\27[?25l\27[H" .. table.concat(lines, "\27[K\n") .. "\27[K\27[J")
end

local function report(now)
  local v, p = view:stats(), prediction:stats()
  print(("netcode delay=%.3f jitter_ms=%.2f t=%.3f"):format(v.delay_frames, v.jitter_ms, now))
  print(("netcode stats corrections=%d snaps=%d max_error=%.6f extrapolations=%d underruns=%d dilation=%.4f "
    .. "pos=%d stale=%d malformed=%d loss=%.4f gap=%d t=%.3f")
    :format(p.corrections, p.snaps, p.max_error, v.extrapolations, v.underruns, dilation:factor(), pos_counts.taken,
      pos_counts.stale, pos_counts.malformed, v.loss, v.gap_frames, now))
end

local cleared = false

function client.tick(_, dt)
  local now = sys.time()
  if quitting then return end
  if person then
    read_keys(now)
    if quitting then return end
    if not cleared then
      term.write("\27[2J")
      cleared = true
    end
  end
  if not (r and prediction) or link_down then return end
  -- A tick this late means the process was not scheduled: no input was made
  -- meanwhile, and the room held the last one (bench/netcode.py matches
  -- these lines with the large errors).
  if metrics and dt > LATE_TICK_S then print(("netcode late_tick dt_ms=%.1f t=%.3f"):format(dt * 1000, now)) end
  for _ = 1, dilation:steps(dt) do
    local cmd = person and keyboard_cmd(now) or walk_cmd(now)
    prediction:apply(sender:push(cmd), cmd)
  end
  if #sender:unacked() > 0 then r:send_bytes("input", sender:packet(), "unreliable") end
  local drawn = view:sample(now)
  if person then draw(drawn) end
  if metrics and now >= next_report then
    next_report = now + 1
    report(now)
  end
end
