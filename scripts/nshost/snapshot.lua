-- Compact snapshot encoding with string.pack, shared by nshost's examples.
--   encode_position(x, y) -> 4 bytes: i16 x, i16 y (little-endian)
--   decode_position(bytes) -> x, y        (raises on a short or long string)
--   encode_entry(slot, x, y) -> 6 bytes: u16 slot, i16 x, i16 y
--   encode(tick_num, entries) -> u32 tick, u16 count, entries...
--   decode(bytes) -> tick_num, { {slot=, x=, y=}, ... }
local M = {}

local POSITION = "<i2i2"
local ENTRY = "<I2i2i2"
local HEADER = "<I4I2"
local ENTRY_BYTES = string.packsize(ENTRY)

local function clamp16(v)
  return math.max(-32768, math.min(32767, math.tointeger(v) or math.floor(v)))
end

function M.encode_position(x, y)
  return string.pack(POSITION, clamp16(x), clamp16(y))
end

function M.decode_position(bytes)
  if #bytes ~= 4 then error("position must be 4 bytes, got " .. #bytes, 2) end
  local x, y = string.unpack(POSITION, bytes)
  return x, y
end

function M.encode_entry(slot, x, y)
  return string.pack(ENTRY, slot, clamp16(x), clamp16(y))
end

function M.encode(tick_num, entries)
  return string.pack(HEADER, tick_num % 4294967296, #entries) .. table.concat(entries)
end

function M.decode(bytes)
  local tick_num, count, pos = string.unpack(HEADER, bytes)
  if #bytes - pos + 1 ~= count * ENTRY_BYTES then error("snapshot length does not match its count", 2) end
  local entries = {}
  for i = 1, count do
    local s, x, y
    s, x, y, pos = string.unpack(ENTRY, bytes, pos)
    entries[i] = { slot = s, x = x, y = y }
  end
  return tick_num, entries
end

return M
