---@meta nshost.predict
-- require "nshost.predict" (scripts/nshost/predict.lua): client-side
-- prediction with the shared step function, reconciliation against the
-- server's state for the last applied input, and smoothing of small
-- corrections. Reference: docs/netcode.md "nshost.predict". Checked by
-- tests/bindings/test_annotations.cpp against the module's table and a
-- predictor's methods.

---[server, client, room] The shipped module nshost.predict.
---@class nshost.predict
local M = {}

---The step function both roles run: mutates `state` in place by one input over `dt` seconds.
---@alias nshost.predict.step fun(state: table, cmd: table, dt: number)

---A new predictor over a copy of `state`. Raises on bad options.
---@param options {step: nshost.predict.step, state: table, dt: number, fields: string[], smooth_below?: number, smooth_frames?: integer, epsilon?: number, max_history?: integer} dt: seconds per step (1 / tick_rate); fields: the numeric fields compared and smoothed; smooth_below: corrections smaller than this (euclidean, state units; default 1.0) are smoothed, larger ones snap; smooth_frames: frames a smoothed correction takes (default 4); epsilon: errors above it are corrections (default 1e-6); max_history: inputs remembered (default 256)
---@return nshost.predict.Predictor
function M.new(options) end

---[server, client, room] A client's predicted entity, from predict.new.
---@class nshost.predict.Predictor
---@field state table the predicted state after the last applied input (updated in place)
local Predictor = {}

---Runs step on the predicted state now and remembers (seq, cmd, the state after). Raises unless seq is above the
---last one applied.
---@param seq integer the input's seq (from nshost.input's sender:push)
---@param cmd table the input (as sender:push returned it)
---@return table state the predicted state
function Predictor:apply(seq, cmd) end

---Rewinds to `auth`, the server's state after applying input `ack`, and replays exactly the inputs above `ack`.
---Returns the error: the euclidean distance over fields between what was predicted after `ack` and `auth`; nil when
---`ack` is no longer remembered, or older than an ack already reconciled (ignored, counted as stale).
---@param auth table the authoritative state (copied)
---@param ack integer the last seq the server applied (0: none)
---@return number? error
function Predictor:reconcile(auth, ack) end

---What to draw: a copy of the state plus the decaying smoothing offset.
---@return table
function Predictor:render() end

---Counters: errors are the last and the largest reconcile error.
---@return {applied: integer, reconciles: integer, corrections: integer, smoothed: integer, snaps: integer, replayed: integer, stale: integer, dropped: integer, max_error: number, last_error: number, history: integer}
function Predictor:stats() end

return M
