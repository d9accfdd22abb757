-- Inputs stamped with sequence numbers (docs/netcode.md "nshost.input"): the
-- client's sender keeps every input until the server acks it and sends the
-- last few unacked ones in each packet (redundancy covers a lost packet); the
-- server's receiver buffers them per client, applies one per tick in seq
-- order, holds the last one when none is due (seed 004: "held until
-- superseded") and reports the ack and the buffer depth that feed the
-- client's reconciliation and time dilation (seed 002 TimeDilation).
--
--   local input = require("nshost.input")
--   local fields = { dx = "i8", dy = "i8", fire = "bool" }    -- same on both sides
--   local sender = input.sender{ fields = fields, redundancy = 4 }
--   local inbox = input.receiver{ fields = fields, delay_ticks = 0 }
--   local dil = input.dilation{ tick_rate = 30, target_depth = 2 }
--
-- Packet: u32 first_seq, u8 count, then count records (the fields in sorted
-- key order, little-endian string.pack formats), consecutive seqs. Time is
-- always passed in. Misuse raises; bytes from a peer never raise: receive
-- returns nil, reason and changes nothing but the malformed count.
local M = {}

local floor, huge, mtype = math.floor, math.huge, math.type
local pack, unpack, packsize = string.pack, string.unpack, string.packsize

local FORMATS = {
  i8 = "i1", i16 = "i2", i32 = "i4", u8 = "I1", u16 = "I2", u32 = "I4", f32 = "f", f64 = "d", bool = "B",
}
local RANGES = {
  i8 = { -128, 127 }, i16 = { -32768, 32767 }, i32 = { -2147483648, 2147483647 },
  u8 = { 0, 255 }, u16 = { 0, 65535 }, u32 = { 0, 4294967295 },
}
local HEADER = "<I4B"
local HEADER_BYTES = packsize(HEADER)
local MAX_SEQ = 0xFFFFFFFF
-- The most records one packet may carry (the largest redundancy).
local MAX_COUNT = 32

local function fail(fn, message, level)
  error(("input.%s: %s"):format(fn, message), (level or 1) + 1)
end

local function int_option(fn, options, name, default, min, max)
  local v = options[name]
  if v == nil then return default end
  if mtype(v) ~= "integer" or v < min or (max and v > max) then
    fail(fn, ("%s must be an integer in %d..%s (got %s)"):format(name, min, max or "", tostring(v)), 3)
  end
  return v
end

local function num_option(fn, options, name, default, min, max)
  local v = options[name]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min or (max and v > max) or v == huge then
    fail(fn, ("%s must be a number in %s..%s (got %s)"):format(name, min, max or "inf", tostring(v)), 3)
  end
  return v
end

-- fields = { name = "type" } -> a codec: sorted names, their types, the
-- record's string.pack format and size.
local function codec(fn, fields)
  if type(fields) ~= "table" then fail(fn, "fields must be a table of name = type", 3) end
  local names = {}
  for name, kind in pairs(fields) do
    if type(name) ~= "string" then fail(fn, "field names must be strings", 3) end
    if not FORMATS[kind] then
      fail(fn, ("field %s: unknown type %s (i8 i16 i32 u8 u16 u32 f32 f64 bool)"):format(name, tostring(kind)), 3)
    end
    names[#names + 1] = name
  end
  if #names == 0 then fail(fn, "fields must name at least one field", 3) end
  table.sort(names)
  local kinds, format = {}, { "<" }
  for i, name in ipairs(names) do
    kinds[i] = fields[name]
    format[#format + 1] = FORMATS[fields[name]]
  end
  format = table.concat(format)
  return { names = names, kinds = kinds, format = format, size = packsize(format) }
end

-- The record of cmd; a missing field counts as 0 (false for bool).
local function encode(c, cmd)
  local values = {}
  for i, name in ipairs(c.names) do
    local kind, v = c.kinds[i], cmd[name]
    if kind == "bool" then
      if v ~= nil and type(v) ~= "boolean" then fail("sender:push", ("%s must be a boolean"):format(name), 3) end
      values[i] = v and 1 or 0
    elseif kind == "f32" or kind == "f64" then
      v = v or 0
      if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
        fail("sender:push", ("%s must be a finite number (got %s)"):format(name, tostring(v)), 3)
      end
      values[i] = v
    else
      v = v or 0
      local iv = math.tointeger(v)
      local range = RANGES[kind]
      if not iv or iv < range[1] or iv > range[2] then
        fail("sender:push", ("%s must be an integer in %d..%d (got %s)"):format(name, range[1], range[2], tostring(v)),
          3)
      end
      values[i] = iv
    end
  end
  return pack(c.format, table.unpack(values, 1, #c.names))
end

-- The cmd of the record at `pos`, or nil, reason for bytes no sender makes.
local function decode(c, data, pos)
  local values = { unpack(c.format, data, pos) }
  local cmd = {}
  for i, name in ipairs(c.names) do
    local kind, v = c.kinds[i], values[i]
    if kind == "bool" then
      if v > 1 then return nil, "bad field bytes" end
      v = v == 1
    elseif (kind == "f32" or kind == "f64") and (v ~= v or v == huge or v == -huge) then
      return nil, "bad field bytes"
    end
    cmd[name] = v
  end
  return cmd
end

local Sender = {}
Sender.__index = Sender

-- sender{ fields =, redundancy = 4, max_unacked = 256 }
function M.sender(options)
  if type(options) ~= "table" then fail("sender", "options must be a table", 2) end
  local c = codec("sender", options.fields)
  return setmetatable({
    codec = c,
    redundancy = int_option("sender", options, "redundancy", 4, 1, MAX_COUNT),
    max_unacked = int_option("sender", options, "max_unacked", 256, 1),
    next_seq = 1,
    pending = {},   -- { seq =, cmd =, bytes = } in seq order, consecutive seqs
    counts = { sent = 0, acked = 0, dropped = 0, packets = 0 },
  }, Sender)
end

function Sender:push(cmd)
  if type(cmd) ~= "table" then fail("sender:push", "cmd must be a table", 2) end
  if self.next_seq > MAX_SEQ then fail("sender:push", "seq space (u32) exhausted", 2) end
  local bytes = encode(self.codec, cmd)
  local seq = self.next_seq
  self.next_seq = seq + 1
  -- The stored cmd is the decoded record: exactly what the server applies
  -- (f32 rounding included), so prediction replays the same values.
  local pending = self.pending
  local stored = decode(self.codec, bytes, 1)
  pending[#pending + 1] = { seq = seq, cmd = stored, bytes = bytes }
  self.counts.sent = self.counts.sent + 1
  local over = #pending - self.max_unacked
  if over > 0 then
    table.move(pending, over + 1, #pending + over, 1)
    self.counts.dropped = self.counts.dropped + over
  end
  return seq, stored
end

function Sender:packet()
  local pending = self.pending
  local n = #pending
  if n == 0 then return nil end
  local first = n - self.redundancy + 1
  if first < 1 then first = 1 end
  local parts = { pack(HEADER, pending[first].seq, n - first + 1) }
  for i = first, n do parts[#parts + 1] = pending[i].bytes end
  self.counts.packets = self.counts.packets + 1
  return table.concat(parts)
end

function Sender:ack(seq)
  if mtype(seq) ~= "integer" then fail("sender:ack", "seq must be an integer", 2) end
  local pending = self.pending
  local n = 0
  while pending[n + 1] and pending[n + 1].seq <= seq do n = n + 1 end
  if n > 0 then
    table.move(pending, n + 1, #pending + n, 1)
    self.counts.acked = self.counts.acked + n
  end
  return n
end

function Sender:unacked()
  local out = {}
  for i, e in ipairs(self.pending) do out[i] = { seq = e.seq, cmd = e.cmd } end
  return out
end

function Sender:stats()
  local c = self.counts
  return { sent = c.sent, acked = c.acked, unacked = #self.pending, dropped = c.dropped, packets = c.packets }
end

local Receiver = {}
Receiver.__index = Receiver

local COUNTERS = { "received", "applied", "late", "missed", "held", "filled", "malformed", "dropped" }

local function new_counts()
  local t = {}
  for _, k in ipairs(COUNTERS) do t[k] = 0 end
  return t
end

-- receiver{ fields =, delay_ticks = 0, max_buffer = 64, max_jump = 4096 }
function M.receiver(options)
  if type(options) ~= "table" then fail("receiver", "options must be a table", 2) end
  local c = codec("receiver", options.fields)
  local max_buffer = int_option("receiver", options, "max_buffer", 64, 1)
  local delay_ticks = int_option("receiver", options, "delay_ticks", 0, 0)
  if max_buffer <= 2 * math.max(2, delay_ticks) + 1 then
    fail("receiver", "max_buffer must be above 2 * max(2, delay_ticks) + 1 (where it trims)", 2)
  end
  return setmetatable({
    codec = c,
    delay_ticks = delay_ticks,
    max_buffer = max_buffer,
    max_jump = int_option("receiver", options, "max_jump", 4096, 1),
    keys = {},            -- key -> per-client state
    totals = new_counts(),
  }, Receiver)
end

local function check_key(fn, key)
  local t = type(key)
  if t ~= "string" and mtype(key) ~= "integer" then
    fail(fn, "keys are strings or integers (got " .. tostring(key) .. ")", 3)
  end
end

local function bump(self, st, name, n)
  n = n or 1
  self.totals[name] = self.totals[name] + n
  if st then st.counts[name] = st.counts[name] + n end
end

-- Parses and checks a whole packet before anything changes.
local function parse(self, st, data)
  local c = self.codec
  if #data < HEADER_BYTES then return nil, "truncated" end
  local first, count = unpack(HEADER, data)
  if count == 0 then return nil, "empty" end
  if count > MAX_COUNT then return nil, "count over the cap" end
  local want = HEADER_BYTES + count * c.size
  if #data < want then return nil, "truncated" end
  if #data > want then return nil, "trailing bytes" end
  local last = first + count - 1
  if first == 0 or last > MAX_SEQ then return nil, "seq out of range" end
  if st and last > st.highest + self.max_jump then return nil, "seq jump" end
  local cmds, pos = {}, HEADER_BYTES + 1
  for i = 1, count do
    local cmd, why = decode(c, data, pos)
    if not cmd then return nil, why end
    cmds[i] = cmd
    pos = pos + c.size
  end
  return first, cmds
end

-- Gives up every seq below `seq` not applied yet: the buffered ones
-- (already out of st.seqs) are dropped, the holes missed, and the newest
-- holes remembered so that a copy arriving later counts as late. The work is
-- bounded by the buffer, not by the distance: a peer chooses its seqs.
local function skip_to(self, st, seq)
  local gap = seq - st.last - 1
  if gap <= 0 then return end
  local gone = {}
  for s in pairs(st.cmds) do
    if s < seq then gone[#gone + 1] = s end
  end
  for _, s in ipairs(gone) do st.cmds[s] = nil end
  bump(self, st, "dropped", #gone)
  bump(self, st, "missed", gap - #gone)
  local dropped = {}
  for _, s in ipairs(gone) do dropped[s] = true end
  local from = math.max(st.last + 1, seq - self.max_buffer)
  for s = from, seq - 1 do
    if not dropped[s] then st.skipped[s] = true end
  end
  for s in pairs(st.skipped) do
    if s < seq - self.max_buffer then st.skipped[s] = nil end
  end
  st.last = seq - 1
end

function Receiver:receive(key, data)
  check_key("receiver:receive", key)
  if type(data) ~= "string" then fail("receiver:receive", "data must be a string", 2) end
  local st = self.keys[key]
  local first, cmds = parse(self, st, data)
  if not first then
    bump(self, st, "malformed")
    return nil, cmds
  end
  if not st then
    -- The first packet sets the base: whatever preceded it is not owed.
    st = { last = first - 1, highest = first - 1, seqs = {}, cmds = {}, skipped = {}, held = nil,
           waited = 0, started = false, counts = new_counts() }
    self.keys[key] = st
  end
  bump(self, st, "received")
  local count = #cmds
  for i = 1, count do
    local seq = first + i - 1
    if seq <= st.last then
      if st.skipped[seq] then   -- its first copy, after its tick passed
        st.skipped[seq] = nil
        bump(self, st, "late")
      end
    elseif not st.cmds[seq] then
      st.cmds[seq] = cmds[i]
      local seqs = st.seqs
      local at = #seqs + 1
      while at > 1 and seqs[at - 1] > seq do at = at - 1 end
      table.insert(seqs, at, seq)
      if seq > st.highest then st.highest = seq end
      -- A sender puts each new input last in its packet: arriving anywhere
      -- else, this is the redundant copy of a lost packet.
      if i < count then bump(self, st, "filled") end
      if #seqs > self.max_buffer then
        -- Full: give up the oldest (and any hole below the next one).
        table.remove(seqs, 1)
        skip_to(self, st, seqs[1])
      end
    end
  end
  return true
end

function Receiver:take(key)
  check_key("receiver:take", key)
  local st = self.keys[key]
  if not st then return nil end
  local seqs, d = st.seqs, self.delay_ticks
  if not st.started and #seqs > 0 and #seqs >= d then st.started = true end
  if st.started and #seqs - 1 > 2 * math.max(2, d) then
    -- The client runs fast (more than max(2, d) past the depth it aims at
    -- would still wait after this take): trim back so that d wait.
    local keep_from = seqs[#seqs - d]
    local n = 0
    while seqs[n + 1] < keep_from do n = n + 1 end
    table.move(seqs, n + 1, #seqs + n, 1)
    skip_to(self, st, keep_from)
  end
  local next_seq = seqs[1]
  if st.started and next_seq then
    if next_seq ~= st.last + 1 then
      st.waited = st.waited + 1
      if st.waited > d then skip_to(self, st, next_seq) end
    end
    if next_seq == st.last + 1 then
      table.remove(seqs, 1)
      local cmd = st.cmds[next_seq]
      st.cmds[next_seq] = nil
      st.last, st.held, st.waited = next_seq, cmd, 0
      bump(self, st, "applied")
      return cmd, next_seq, true
    end
  end
  if st.held then
    bump(self, st, "held")
    return st.held, st.last, false
  end
  return nil
end

function Receiver:ack(key)
  check_key("receiver:ack", key)
  local st = self.keys[key]
  return st and st.last or 0
end

function Receiver:depth(key)
  check_key("receiver:depth", key)
  local st = self.keys[key]
  return st and #st.seqs or 0
end

function Receiver:forget(key)
  check_key("receiver:forget", key)
  self.keys[key] = nil
end

function Receiver:stats(key)
  local from = self.totals
  if key ~= nil then
    check_key("receiver:stats", key)
    local st = self.keys[key]
    from = st and st.counts or new_counts()
  end
  local out = {}
  for _, k in ipairs(COUNTERS) do out[k] = from[k] end
  return out
end

local Dilation = {}
Dilation.__index = Dilation

-- The most fixed steps one steps() call runs (seed 002
-- MAX_CLIENT_DILATED_TICKS_PER_STEP); a longer stall drops the backlog.
local MAX_STEPS = 3
-- Weight of each observed depth in the running average the factor follows:
-- one echoed depth is noisy (jitter moves it by a tick or two).
local DEPTH_SMOOTHING = 0.2

-- dilation{ tick_rate =, target_depth = 2, max = 0.05, gain = 0.05 }
function M.dilation(options)
  if type(options) ~= "table" then fail("dilation", "options must be a table", 2) end
  local tick_rate = num_option("dilation", options, "tick_rate", nil, 0)
  if not tick_rate or tick_rate <= 0 then fail("dilation", "tick_rate must be a number > 0", 2) end
  local target = num_option("dilation", options, "target_depth", 2, 0)
  return setmetatable({
    tick_rate = tick_rate,
    target_depth = target,
    max = num_option("dilation", options, "max", 0.05, 0, 0.5),
    gain = num_option("dilation", options, "gain", 0.05, 0),
    depth = nil,            -- running average of the observed depths
    acc = 0,                -- fraction of a step carried to the next call, in steps
    value = 0,
    counts = { observed = 0, steps = 0, dropped = 0 },
  }, Dilation)
end

function Dilation:observe(depth)
  if type(depth) ~= "number" or depth ~= depth or depth < 0 or depth == huge then
    fail("dilation:observe", "depth must be a number >= 0", 2)
  end
  self.depth = self.depth and self.depth + (depth - self.depth) * DEPTH_SMOOTHING or depth
  local f = self.gain * (self.target_depth - self.depth)
  if f > self.max then f = self.max elseif f < -self.max then f = -self.max end
  self.value = f
  self.counts.observed = self.counts.observed + 1
  return f
end

function Dilation:factor()
  return self.value
end

function Dilation:steps(dt)
  if type(dt) ~= "number" or dt ~= dt or dt < 0 or dt == huge then
    fail("dilation:steps", "dt must be a number of seconds >= 0", 2)
  end
  local acc = self.acc + dt * self.tick_rate * (1 + self.value)
  -- 1e-9: dt = 1/rate must give one step, not 0.9999999 of one.
  local n = floor(acc + 1e-9)
  acc = acc - n
  if n > MAX_STEPS then
    self.counts.dropped = self.counts.dropped + (n - MAX_STEPS)
    n = MAX_STEPS
  end
  self.acc = acc
  self.counts.steps = self.counts.steps + n
  return n
end

function Dilation:stats()
  local c = self.counts
  return { factor = self.value, depth = self.depth or 0, observed = c.observed, steps = c.steps, dropped = c.dropped }
end

return M
