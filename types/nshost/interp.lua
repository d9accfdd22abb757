---@meta nshost.interp
-- require "nshost.interp" (scripts/nshost/interp.lua): remote entities drawn
-- between two buffered authoritative states behind a render delay that adapts
-- to the measured jitter (seed 002 AdaptiveRenderDelay). Reference:
-- docs/netcode.md "nshost.interp". Checked by tests/bindings/test_annotations.cpp
-- against the module's table and a view's methods.

---[server, client, room] The shipped module nshost.interp.
---@class nshost.interp
local M = {}

---A new view. Raises on bad options.
---@param options {tick_rate: number, min_frames?: number, initial_frames?: number, max_frames?: number, history?: integer, safety?: number, max_extrapolate_frames?: number, rise_frames?: number, decay_ms?: number, max_states?: integer, max_entities?: integer, max_fields?: integer} tick_rate: the server's ticks per second; the delay in frames (ticks): min 2, initial 6, max 30; history: arrivals the jitter is measured over (60); safety: jitter multiplier (2); max_extrapolate_frames: 3; rise_frames: the most the delay rises per arrival (0.5); decay_ms: the most it falls per arrival (1.0 ms); max_states: states buffered (64, >= max_frames + 2); max_entities: per state (1024); max_fields: per entity (32)
---@return nshost.interp.View
function M.new(options) end

---[server, client, room] A client's view of remote entities, from interp.new. The delay's target is
---clamp(max(safety * jitter, latest + jitter) * tick_rate + gap, min, max) over the last `history` arrivals.
---@class nshost.interp.View
local View = {}

---Buffers the authoritative state of server tick `tick` (copied: key -> table of numbers, strings, booleans) that
---arrived at local time `now` (seconds), and updates the jitter estimate and the delay. A tick not newer than the
---newest buffered is ignored (counted as stale).
---@param tick integer the server tick of this state
---@param entities table<any, table> key -> values
---@param now number local seconds of arrival
---@return boolean buffered
function View:push(tick, entities, now) end

---The entities as drawn at local time `now`: key -> values at server tick render_tick(now), numbers interpolated
---between the two states around it, others snapped to the older; past the newest state, extrapolated for at most
---max_extrapolate_frames, then held (an underrun).
---@param now number local seconds
---@return table<any, table>
function View:sample(now) end

---The server tick (fractional) drawn at local time `now`; nil before the first push.
---@param now number local seconds
---@return number?
function View:render_tick(now) end

---The current render delay in frames.
---@return number
function View:delay_frames() end

---Counters and the current estimate.
---@return {pushes: integer, stale: integer, extrapolations: integer, underruns: integer, extrapolated_samples: integer, truncated: integer, states: integer, delay_frames: number, target_frames: number, jitter_ms: number, late_ms: number}
function View:stats() end

return M
