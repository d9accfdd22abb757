---@meta nshost.input
-- require "nshost.input" (scripts/nshost/input.lua): inputs stamped with
-- sequence numbers, sent with redundancy, buffered and held by the server, and
-- time dilation. Reference: docs/netcode.md "nshost.input". Checked by
-- tests/bindings/test_annotations.cpp against the module's table and the
-- methods of a sender, a receiver and a dilation.

---[server, client, room] The shipped module nshost.input.
---@class nshost.input
local M = {}

---Field name -> wire type; the same table on both sides. Records hold the fields in sorted name order.
---@alias nshost.input.fields table<string, "i8"|"i16"|"i32"|"u8"|"u16"|"u32"|"f32"|"f64"|"bool">

---A key the receiver keeps a buffer for: a string or an integer (e.g. c.id).
---@alias nshost.input.key string|integer

---A client's sender: stamps inputs with seqs 1, 2, ... and keeps them until acked. Raises on bad options.
---@param options {fields: nshost.input.fields, redundancy?: integer, max_unacked?: integer} redundancy: inputs per packet, 1..32 (default 4); max_unacked: inputs kept (default 256), the oldest dropped past it
---@return nshost.input.Sender
function M.sender(options) end

---The server's receiver, one per room; one buffer per key. Raises on bad options.
---@param options {fields: nshost.input.fields, delay_ticks?: integer, max_buffer?: integer, max_jump?: integer} delay_ticks: the jitter buffer in ticks (seed 002 simulation_delay_ticks; default 0: apply on the next tick); max_buffer: inputs buffered per key (default 64, > 2 * max(2, delay_ticks) + 1); max_jump: how far past the newest seq received a packet may reach (default 4096)
---@return nshost.input.Receiver
function M.receiver(options) end

---Time dilation (seed 002 TimeDilation): how many fixed steps the client runs so that the server's buffer stays at
---its target depth. Raises on bad options.
---@param options {tick_rate: number, target_depth?: number, max?: number, gain?: number} tick_rate: steps per second (> 0); target_depth: inputs waiting on the server (default 2); max: the largest |factor| (default 0.05, at most 0.5); gain: factor per input of depth error (default 0.05)
---@return nshost.input.Dilation
function M.dilation(options) end

---[server, client, room] A client's input sender, from input.sender.
---@class nshost.input.Sender
local Sender = {}

---Stamps the next seq on `cmd` and keeps it until acked. A missing field is 0 (false for bool); a value out of its
---type's range raises.
---@param cmd table field name -> value
---@return integer seq 1, 2, ...
---@return table cmd the cmd as the server decodes it (an f32 rounded): what to give nshost.predict
function Sender:push(cmd) end

---The packet to send: the last `redundancy` unacked inputs, oldest first; nil when none is unacked.
---@return string? bytes u32 first_seq, u8 count, count records
function Sender:packet() end

---The server applied every input up to `seq`: drops them.
---@param seq integer
---@return integer dropped how many were dropped
function Sender:ack(seq) end

---The unacked inputs in seq order (what nshost.predict replays); each cmd as the server decodes it.
---@return {seq: integer, cmd: table}[]
function Sender:unacked() end

---Counters.
---@return {sent: integer, acked: integer, unacked: integer, dropped: integer, packets: integer}
function Sender:stats() end

---[server, client, room] The server's input receiver, from input.receiver.
---@class nshost.input.Receiver
local Receiver = {}

---Buffers the inputs of one packet from `key`. A malformed or hostile packet changes nothing and is counted.
---@param key nshost.input.key
---@param data string the packet's bytes
---@return true|nil ok
---@return string? reason "truncated", "trailing bytes", "empty", "count over the cap", "seq out of range", "seq jump" or "bad field bytes"
function Receiver:receive(key, data) end

---The next input of `key` in seq order (fresh = true); when none is due, the last one again (held until superseded,
---fresh = false); nil for a key with nothing applied yet.
---@param key nshost.input.key
---@return table? cmd
---@return integer? seq
---@return boolean? fresh
function Receiver:take(key) end

---The last seq applied for `key` (0 for none): echo it to the client as its ack.
---@param key nshost.input.key
---@return integer
function Receiver:ack(key) end

---Inputs waiting for `key` (0 for none): echo it to the client for its dilation.
---@param key nshost.input.key
---@return integer
function Receiver:depth(key) end

---Drops the buffer of `key` (it left).
---@param key nshost.input.key
function Receiver:forget(key) end

---Counters of `key`, or the totals over every key (forgotten ones included) without one.
---@param key? nshost.input.key
---@return {received: integer, applied: integer, late: integer, missed: integer, held: integer, filled: integer, malformed: integer, dropped: integer}
function Receiver:stats(key) end

---[server, client, room] Time dilation, from input.dilation.
---@class nshost.input.Dilation
local Dilation = {}

---Feeds the depth the server echoed; returns the new factor.
---@param depth number inputs waiting on the server
---@return number factor
function Dilation:observe(depth) end

---The current dilation in [-max, max]; positive: the client runs fast.
---@return number
function Dilation:factor() end

---How many fixed steps to run now (0..3), accumulating dt * tick_rate * (1 + factor).
---@param dt number seconds since the last call (>= 0)
---@return integer
function Dilation:steps(dt) end

---Counters and the running state.
---@return {factor: number, depth: number, observed: integer, steps: integer, dropped: integer}
function Dilation:stats() end

return M
