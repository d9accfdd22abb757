---@meta nshost.snapshot
-- require "nshost.snapshot" (scripts/nshost/snapshot.lua): compact encodings
-- with string.pack, used by the examples. Checked by
-- tests/bindings/test_annotations.cpp against the module's table.

---[server, client, room] The shipped module nshost.snapshot.
---@class nshost.snapshot
local M = {}

---4 bytes: two little-endian i16, each clamped to -32768..32767.
---@param x number
---@param y number
---@return string bytes
function M.encode_position(x, y) end

---The inverse of encode_position. Raises unless `bytes` is exactly 4 bytes.
---@param bytes string
---@return integer x
---@return integer y
function M.decode_position(bytes) end

---6 bytes: u16 slot, i16 x, i16 y (little-endian, x and y clamped).
---@param slot integer 0..65535
---@param x number
---@param y number
---@return string bytes
function M.encode_entry(slot, x, y) end

---A snapshot: u32 tick (tick_num modulo 2^32), u16 count, then the entries.
---@param tick_num integer
---@param entries string[] from encode_entry
---@return string bytes
function M.encode(tick_num, entries) end

---The inverse of encode. Raises when the length does not match the count.
---@param bytes string
---@return integer tick_num
---@return {slot: integer, x: integer, y: integer}[] entries
function M.decode(bytes) end

return M
