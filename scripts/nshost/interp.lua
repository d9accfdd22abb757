-- Interpolation of remote entities behind an adaptive render delay
-- (docs/netcode.md "nshost.interp", seed 002 AdaptiveRenderDelay): the
-- client buffers the authoritative states it receives, each stamped with its
-- server tick, and draws the entities as they were `delay` frames ago,
-- between the two states around that time. The delay follows the measured
-- arrival jitter: fast up, slow down.
--
--   local interp = require("nshost.interp")
--   local view = interp.new{ tick_rate = 30 }
--   view:push(state.tick, state.players, now)     -- on each state received
--   local drawn = view:sample(now)                -- each frame: key -> values
--
-- Time is passed in (`now`: local seconds, any origin); the module reads no
-- clock.
local M = {}

local huge, mtype, sqrt = math.huge, math.type, math.sqrt

local View = {}
View.__index = View

local function fail(fn, message, level)
  error(("interp.%s: %s"):format(fn, message), (level or 1) + 1)
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function num_option(options, name, default, min)
  local v = options[name]
  if v == nil then v = default end
  if not finite(v) or v < min then
    fail("new", ("%s must be a number >= %s (got %s)"):format(name, min, tostring(v)), 3)
  end
  return v
end

local function int_option(options, name, default, min)
  local v = options[name]
  if v == nil then v = default end
  if mtype(v) ~= "integer" or v < min then
    fail("new", ("%s must be an integer >= %d (got %s)"):format(name, min, tostring(v)), 3)
  end
  return v
end

-- new{ tick_rate =, min_frames = 2, initial_frames = 6, max_frames = 30, history = 60, safety = 2,
--      max_extrapolate_frames = 3, rise_frames = 0.5, decay_ms = 1.0, rare_gaps_per_min = 0.5,
--      max_states = 64, max_entities = 1024, max_fields = 32 }
function M.new(options)
  if type(options) ~= "table" then fail("new", "options must be a table", 2) end
  local rate = options.tick_rate
  if not finite(rate) or rate <= 0 then fail("new", "tick_rate must be a number > 0", 2) end
  local min_frames = num_option(options, "min_frames", 2, 0)
  local max_frames = num_option(options, "max_frames", 30, min_frames)
  local initial = num_option(options, "initial_frames", 6, min_frames)
  if initial > max_frames then fail("new", "initial_frames must be <= max_frames", 2) end
  local max_states = int_option(options, "max_states", 64, 2)
  if max_states < max_frames + 2 then fail("new", "max_states must be >= max_frames + 2", 2) end
  return setmetatable({
    rate = rate,
    min_frames = min_frames,
    max_frames = max_frames,
    history = int_option(options, "history", 60, 2),
    safety = num_option(options, "safety", 2, 0),
    max_extrapolate = num_option(options, "max_extrapolate_frames", 3, 0),
    rise = num_option(options, "rise_frames", 0.5, 0),
    decay = num_option(options, "decay_ms", 1.0, 0) / 1000 * rate,   -- frames per arrival
    rare_gaps = num_option(options, "rare_gaps_per_min", 0.5, 0),
    max_states = max_states,
    max_entities = int_option(options, "max_entities", 1024, 1),
    max_fields = int_option(options, "max_fields", 32, 1),
    delay = initial,
    target = initial,
    states = {},       -- { tick =, entities = } in tick order
    offsets = {},      -- ring of (arrival - tick / rate - base) seconds, the last `history` arrivals
    steps = {},        -- ring of the tick steps between consecutive states
    ring_at = 0,
    base = nil,        -- the first offset: keeps the ring's values small
    clock = 0,         -- the mean offset (relative to base)
    jitter = 0,        -- standard deviation of the offsets, seconds
    late = 0,          -- the largest offset above their mean, seconds
    loss = 0,          -- share of the states sent that never arrived (or arrived out of order), over the window
    gap_frames = 1,    -- the gap in ticks the delay covers: the send interval times (1 + lost states in a row)
    below = 0,         -- arrivals in a row whose target was below the delay
    mode = "interp",   -- "interp", "extrap" or "underrun": what the last sample did
    counts = { pushes = 0, stale = 0, extrapolations = 0, underruns = 0, extrapolated_samples = 0, truncated = 0 },
  }, View)
end

-- A copy of the entities: key -> table of numbers, strings and booleans.
local function copy_entities(self, entities)
  local out, n = {}, 0
  for key, values in pairs(entities) do
    if type(values) == "table" then
      if n >= self.max_entities then
        self.counts.truncated = self.counts.truncated + 1
        break
      end
      local e, fields = {}, 0
      for f, v in pairs(values) do
        local t = type(v)
        if (t == "number" or t == "string" or t == "boolean") and fields < self.max_fields then
          e[f] = v
          fields = fields + 1
        end
      end
      out[key] = e
      n = n + 1
    end
  end
  return out
end

-- The jitter estimate and the delay's target, from the arrival of `tick` at `now`.
local function observe(self, tick, now, step)
  local off = now - tick / self.rate
  if not self.base then self.base = off end
  local at = self.ring_at % self.history + 1
  self.ring_at = at
  self.offsets[at] = off - self.base
  if step then self.steps[at] = step end
  local n, sum = #self.offsets, 0
  for i = 1, n do sum = sum + self.offsets[i] end
  local mean = sum / n
  local var, late = 0, 0
  for i = 1, n do
    local d = self.offsets[i] - mean
    var = var + d * d
    if d > late then late = d end
  end
  self.clock = mean
  self.jitter = sqrt(var / n)
  self.late = late
  -- The target: the jitter (seed 002: safety * jitter), or the latest
  -- arrival of the window plus the jitter, whichever is more (a reliable
  -- channel's retransmit holds every later state back: one late arrival and
  -- a burst, which a standard deviation alone underrates), plus the gap to
  -- the next state. On an unreliable stream lost states widen that gap: it
  -- covers a run of lost states unless runs that long come rarer than
  -- rare_gaps_per_min (seed 002's "+ 1 frame" covers none, and at 5 % loss
  -- every other lost state would be drawn extrapolated).
  local interval, spanned, n_steps = huge, 0, 0
  for _, s in pairs(self.steps) do
    if s < interval then interval = s end
    spanned = spanned + s
    n_steps = n_steps + 1
  end
  local gap = 1
  self.loss = 0
  if n_steps > 0 then
    -- The smallest step is the send interval (1 when every tick is sent).
    local sent = spanned / interval
    local loss = (sent - n_steps) / sent
    local per_min = 60 * self.rate / interval
    local run = 0
    if loss > 0 then
      while run < self.max_frames and per_min * loss ^ (run + 1) > self.rare_gaps do run = run + 1 end
    end
    self.loss = loss
    gap = interval * (1 + run)
  end
  self.gap_frames = gap
  local target = math.max(self.safety * self.jitter, late + self.jitter) * self.rate + gap
  if target < self.min_frames then target = self.min_frames end
  if target > self.max_frames then target = self.max_frames end
  self.target = target
  if target >= self.delay then
    self.delay = math.min(target, self.delay + self.rise)
    self.below = 0
  else
    -- Down only after a whole window below: the next stall is likely as
    -- long as the last.
    self.below = self.below + 1
    if self.below > self.history then self.delay = math.max(target, self.delay - self.decay) end
  end
end

function View:push(tick, entities, now)
  if mtype(tick) ~= "integer" then fail("push", "tick must be an integer (the server tick)", 2) end
  if type(entities) ~= "table" then fail("push", "entities must be a table of key -> values", 2) end
  if not finite(now) then fail("push", "now must be a finite number of seconds", 2) end
  local states = self.states
  local newest = states[#states]
  if newest and tick <= newest.tick then
    self.counts.stale = self.counts.stale + 1
    return false
  end
  states[#states + 1] = { tick = tick, entities = copy_entities(self, entities) }
  if #states > self.max_states then table.remove(states, 1) end
  self.counts.pushes = self.counts.pushes + 1
  observe(self, tick, now, newest and tick - newest.tick)
  return true
end

-- Values of one entity at fraction k from a (k = 0) to b (k = 1; beyond 1:
-- extrapolated). Numbers are interpolated; the rest snap to the older of the
-- two around the render time (b's once k reaches 1).
local function blend(av, bv, k)
  local out = {}
  for f, b in pairs(bv) do
    local a = av[f]
    if type(a) == "number" and type(b) == "number" then
      out[f] = a + (b - a) * k
    elseif a ~= nil and k < 1 then
      out[f] = a
    else
      out[f] = b
    end
  end
  return out
end

local function copy_values(v)
  local out = {}
  for f, x in pairs(v) do out[f] = x end
  return out
end

-- Every entity of b: blended with a where a has it too.
local function between(a, b, k)
  local out = {}
  for key, bv in pairs(b.entities) do
    local av = a and a.entities[key]
    out[key] = av and blend(av, bv, k) or copy_values(bv)
  end
  return out
end

-- The server tick drawn at local time `now` (fractional).
function View:render_tick(now)
  if not finite(now) then fail("render_tick", "now must be a finite number of seconds", 2) end
  if not self.base then return nil end
  return (now - self.base - self.clock) * self.rate - self.delay
end

-- A render time this close to a state's tick (in frames) is on it: float
-- rounding of now * tick_rate must not read as an extrapolation.
local ON_TICK = 1e-6

function View:sample(now)
  if not finite(now) then fail("sample", "now must be a finite number of seconds", 2) end
  local states = self.states
  local n = #states
  if n == 0 then return {} end
  local t = (now - self.base - self.clock) * self.rate - self.delay
  local newest = states[n]
  local c = self.counts
  if t > newest.tick + ON_TICK then
    local ahead = t - newest.tick
    if ahead > self.max_extrapolate then
      if self.mode ~= "underrun" then
        if self.mode == "interp" then c.extrapolations = c.extrapolations + 1 end
        c.underruns = c.underruns + 1
      end
      self.mode = "underrun"
      ahead = self.max_extrapolate
    else
      if self.mode == "interp" then c.extrapolations = c.extrapolations + 1 end
      self.mode = "extrap"
    end
    c.extrapolated_samples = c.extrapolated_samples + 1
    local prev = states[n - 1]
    if not prev then return between(nil, newest, 1) end
    return between(prev, newest, 1 + ahead / (newest.tick - prev.tick))
  end
  self.mode = "interp"
  if t >= newest.tick - ON_TICK then return between(nil, newest, 1) end
  if t <= states[1].tick then return between(nil, states[1], 1) end
  local i = n - 1
  while states[i].tick > t do i = i - 1 end
  -- States older than the one before the render time are not needed again.
  if i > 1 then
    table.move(states, i, n, 1)
    for j = n - i + 2, n do states[j] = nil end
    i = 1
  end
  local a, b = states[i], states[i + 1]
  return between(a, b, (t - a.tick) / (b.tick - a.tick))
end

function View:delay_frames()
  return self.delay
end

function View:stats()
  local c = self.counts
  return {
    pushes = c.pushes, stale = c.stale, extrapolations = c.extrapolations, underruns = c.underruns,
    extrapolated_samples = c.extrapolated_samples, truncated = c.truncated, states = #self.states,
    delay_frames = self.delay, target_frames = self.target, jitter_ms = self.jitter * 1000,
    late_ms = self.late * 1000, loss = self.loss, gap_frames = self.gap_frames,
  }
end

return M
