-- Client-side prediction and reconciliation (docs/netcode.md
-- "nshost.predict"): the client runs its own inputs through the step
-- function the server runs, at once; when an authoritative state arrives for
-- the last input the server applied (its ack), it rewinds to that state and
-- replays exactly the inputs above the ack. A small correction is smoothed
-- over a few frames (render() = state + a decaying offset), a large one snaps.
--
--   local predict = require("nshost.predict")
--   local p = predict.new{ step = step, state = { x = 0, y = 0 }, dt = 1 / 30, fields = { "x", "y" } }
--   p:apply(seq, cmd)              -- each input, as it is sent
--   local err = p:reconcile(me, me.ack)
--   draw(p:render())
--
-- The step function is step(state, cmd, dt): it mutates state in place.
-- Time is passed in (dt); the module reads no clock.
local M = {}

local huge, mtype, sqrt = math.huge, math.type, math.sqrt

local Predictor = {}
Predictor.__index = Predictor

local function fail(fn, message, level)
  error(("predict.%s: %s"):format(fn, message), (level or 1) + 1)
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

-- A copy of a state: a tree of plain values (nested tables copied, so the
-- step function never mutates the caller's or the mirror's tables).
local function copy(t, depth)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "table" then
      if depth >= 8 then error("predict: a state nests deeper than 8 tables", 0) end
      v = copy(v, depth + 1)
    end
    out[k] = v
  end
  return out
end

local function assign(dst, src)
  local fresh = copy(src, 1)   -- first: src may be dst
  for k in pairs(dst) do dst[k] = nil end
  for k, v in pairs(fresh) do dst[k] = v end
end

-- Euclidean distance over fields (a field that is not a number on either
-- side counts as 0).
local function distance(fields, a, b)
  local sum = 0
  for i = 1, #fields do
    local f = fields[i]
    local x, y = a[f], b[f]
    if type(x) == "number" and type(y) == "number" then sum = sum + (x - y) * (x - y) end
  end
  return sqrt(sum)
end

-- new{ step =, state =, dt =, fields =, smooth_below = 1.0, smooth_frames = 4, epsilon = 1e-6, max_history = 256 }
function M.new(options)
  if type(options) ~= "table" then fail("new", "options must be a table", 2) end
  if type(options.step) ~= "function" then fail("new", "step must be a function(state, cmd, dt)", 2) end
  if type(options.state) ~= "table" then fail("new", "state must be a table", 2) end
  if not finite(options.dt) or options.dt <= 0 then fail("new", "dt must be a number of seconds > 0", 2) end
  local fields = options.fields
  if type(fields) ~= "table" or #fields == 0 then fail("new", "fields must be a non-empty array of names", 2) end
  for i = 1, #fields do
    if type(fields[i]) ~= "string" then fail("new", "fields must be a non-empty array of names", 2) end
  end
  local smooth_below = options.smooth_below or 1.0
  if not finite(smooth_below) or smooth_below < 0 then fail("new", "smooth_below must be a number >= 0", 2) end
  local smooth_frames = options.smooth_frames or 4
  if mtype(smooth_frames) ~= "integer" or smooth_frames < 1 then
    fail("new", "smooth_frames must be an integer >= 1", 2)
  end
  local epsilon = options.epsilon or 1e-6
  if not finite(epsilon) or epsilon < 0 then fail("new", "epsilon must be a number >= 0", 2) end
  local max_history = options.max_history or 256
  if mtype(max_history) ~= "integer" or max_history < 1 then
    fail("new", "max_history must be an integer >= 1", 2)
  end
  return setmetatable({
    state = copy(options.state, 1),
    step = options.step,
    dt = options.dt,
    fields = table.move(fields, 1, #fields, 1, {}),
    smooth_below = smooth_below,
    smooth_frames = smooth_frames,
    epsilon = epsilon,
    max_history = max_history,
    history = {},      -- { seq =, cmd =, after = state copy } in seq order
    last_seq = 0,      -- the newest seq applied
    acked = 0,         -- the newest ack reconciled
    offset = {},       -- field -> what render() adds, decaying
    offset_left = 0,   -- frames until the offset is 0
    counts = { applied = 0, reconciles = 0, corrections = 0, smoothed = 0, snaps = 0, replayed = 0, stale = 0,
               dropped = 0, max_error = 0, last_error = 0 },
  }, Predictor)
end

local function decay(self)
  if self.offset_left <= 0 then return end
  local keep = (self.offset_left - 1) / self.offset_left
  for f, v in pairs(self.offset) do self.offset[f] = v * keep end
  self.offset_left = self.offset_left - 1
  if self.offset_left == 0 then self.offset = {} end
end

function Predictor:apply(seq, cmd)
  if mtype(seq) ~= "integer" or seq <= self.last_seq then
    fail("apply", ("seq must be an integer above the last one applied (%d), got %s"):format(self.last_seq,
      tostring(seq)), 2)
  end
  if type(cmd) ~= "table" then fail("apply", "cmd must be a table", 2) end
  self.step(self.state, cmd, self.dt)
  self.last_seq = seq
  local history = self.history
  history[#history + 1] = { seq = seq, cmd = cmd, after = copy(self.state, 1) }
  local over = #history - self.max_history
  if over > 0 then
    table.move(history, over + 1, #history + over, 1)
    self.counts.dropped = self.counts.dropped + over
  end
  self.counts.applied = self.counts.applied + 1
  decay(self)
  return self.state
end

function Predictor:reconcile(auth, ack)
  if type(auth) ~= "table" then fail("reconcile", "auth must be a table (the authoritative state)", 2) end
  if mtype(ack) ~= "integer" or ack < 0 then fail("reconcile", "ack must be an integer >= 0", 2) end
  local c = self.counts
  if ack < self.acked then   -- older than one already reconciled
    c.stale = c.stale + 1
    return nil
  end
  self.acked = ack
  c.reconciles = c.reconciles + 1
  local history, fields = self.history, self.fields
  -- Keep the entry of `ack` itself: a held input moves the server's state
  -- again under the same ack.
  local n = 0
  while history[n + 1] and history[n + 1].seq < ack do n = n + 1 end
  if n > 0 then table.move(history, n + 1, #history + n, 1) end
  local err
  if history[1] and history[1].seq == ack then err = distance(fields, history[1].after, auth) end
  local before = {}
  for i = 1, #fields do before[fields[i]] = self.state[fields[i]] end
  assign(self.state, auth)
  local replayed = 0
  for i = 1, #history do
    local e = history[i]
    if e.seq > ack then
      self.step(self.state, e.cmd, self.dt)
      e.after = copy(self.state, 1)
      replayed = replayed + 1
    else
      e.after = copy(self.state, 1)
    end
  end
  c.replayed = c.replayed + replayed
  if err then
    c.last_error = err
    if err > c.max_error then c.max_error = err end
  end
  local jump = distance(fields, before, self.state)
  if (err or jump) > self.epsilon then
    c.corrections = c.corrections + 1
    -- What is drawn stays where it was and glides to the new prediction.
    local offset, size = self.offset, 0
    for i = 1, #fields do
      local f = fields[i]
      local b, a = before[f], self.state[f]
      if type(b) == "number" and type(a) == "number" then
        offset[f] = (offset[f] or 0) + b - a
        size = size + offset[f] * offset[f]
      end
    end
    if sqrt(size) < self.smooth_below then
      self.offset_left = self.smooth_frames
      c.smoothed = c.smoothed + 1
    else
      self.offset, self.offset_left = {}, 0
      c.snaps = c.snaps + 1
    end
  end
  return err
end

function Predictor:render()
  local out = {}
  for k, v in pairs(self.state) do out[k] = v end
  for f, v in pairs(self.offset) do
    if type(out[f]) == "number" then out[f] = out[f] + v end
  end
  return out
end

function Predictor:stats()
  local out = {}
  for k, v in pairs(self.counts) do out[k] = v end
  out.history = #self.history
  return out
end

return M
