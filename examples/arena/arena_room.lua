-- One arena match, in the room's own Lua state (server.lua defines the type).
-- Each tick: every client's next input (nshost.input's jitter buffer) goes
-- through the shared step function; the player who is "it" tags anyone
-- within reach; and one unreliable "pos" message (arena.pack_positions) tells
-- every client each player's position, last applied seq (ack) and input
-- buffer depth as of this tick: transient data, superseded a tick later, so
-- a lost one is not resent and holds nothing back. The state (state sync,
-- reliable) keeps what lasts: who plays, their scores, who is "it".
local input = require("nshost.input")
local arena = require("step")

local step, DT = arena.step, arena.DT
local FREEZE_TICKS = arena.TICK_RATE  -- a new "it" cannot tag back for a second

room.define_state({
  it = "u32",   -- c.id of the player who is "it", 0 when nobody
  players = { map = { score = "u16" } },
})
room.state.it = 0
room.state.players = {}

-- delay_ticks: a jitter buffer of two ticks (66 ms) that the clients' time
-- dilation keeps filled, so an input late by up to that is still applied on
-- time rather than replaced by the held one.
local inbox = input.receiver({ fields = arena.FIELDS, delay_ticks = 2, max_buffer = 64 })
-- The last input is held until superseded (a lost one must not stop the
-- player), but not for ever: a client whose link is down would otherwise run
-- into a wall for the seconds it takes to come back.
local MAX_HELD_TICKS = arena.TICK_RATE // 2
local held_ticks = {}   -- c.id -> ticks in a row the held input was applied
local bodies = {}       -- c.id -> { x =, y =, ack =, depth = }: the authoritative player, sent each tick
local it_since = 0
local totals = { received = 0, applied = 0, late = 0, missed = 0, held = 0, filled = 0, malformed = 0 }
local STAT_NAMES = { "received", "applied", "late", "missed", "held", "filled", "malformed" }

local function pick_it()
  local best
  for id in pairs(room.state.players) do
    if not best or id < best then best = id end
  end
  room.state.it = best or 0
end

function room.join(c)
  room.state.players[c.id] = { score = 0 }
  bodies[c.id] = { x = math.random(0, arena.WIDTH - 1), y = math.random(0, arena.HEIGHT - 1), ack = 0, depth = 0 }
  if room.state.it == 0 then pick_it() end
end

function room.leave(c)
  local s = inbox:stats(c.id)
  if s then
    for _, k in ipairs(STAT_NAMES) do totals[k] = totals[k] + (s[k] or 0) end
  end
  inbox:forget(c.id)
  held_ticks[c.id] = nil
  bodies[c.id] = nil
  room.state.players[c.id] = nil
  if room.state.it == c.id then pick_it() end
end

function room.message(c, kind, data)
  if kind == "input" and type(data) == "string" then inbox:receive(c.id, data) end
end

local function tag(tick_num)
  local it = bodies[room.state.it]
  if not it or tick_num - it_since < FREEZE_TICKS then return end
  for id, p in pairs(bodies) do
    if id ~= room.state.it and (p.x - it.x) ^ 2 + (p.y - it.y) ^ 2 < arena.TAG_RADIUS ^ 2 then
      local scorer = room.state.players[room.state.it]
      scorer.score = math.min(scorer.score + 1, 65535)
      room.state.it, it_since = id, tick_num
      return
    end
  end
end

-- One line a second for bench/netcode.py: the inbox counters of every client
-- since the room opened.
local function print_stats()
  local sum = {}
  for _, k in ipairs(STAT_NAMES) do sum[k] = totals[k] end
  for _, c in ipairs(room.clients()) do
    local s = inbox:stats(c.id)
    if s then
      for _, k in ipairs(STAT_NAMES) do sum[k] = sum[k] + (s[k] or 0) end
    end
  end
  local parts = {}
  for _, k in ipairs(STAT_NAMES) do parts[#parts + 1] = k .. "=" .. sum[k] end
  print(("arena inbox room=%d clients=%d %s t=%.3f"):format(room.id, #room.clients(), table.concat(parts, " "),
    sys.time()))
end

function room.tick(tick_num)
  local sent = {}
  for _, c in ipairs(room.clients()) do
    local p = bodies[c.id]
    if p then
      local cmd, _, fresh = inbox:take(c.id)
      held_ticks[c.id] = fresh and 0 or (held_ticks[c.id] or 0) + 1
      if cmd and held_ticks[c.id] <= MAX_HELD_TICKS then step(p, cmd, DT) end
      p.ack = inbox:ack(c.id) or 0
      p.depth = math.min(inbox:depth(c.id) or 0, 255)
      sent[#sent + 1] = { id = c.id, x = p.x, y = p.y, ack = p.ack, depth = p.depth }
    end
  end
  tag(tick_num)
  if #sent > 0 then room.broadcast_bytes("pos", arena.pack_positions(tick_num, sent), "unreliable") end
  if tick_num % arena.TICK_RATE == 0 then print_stats() end
end
