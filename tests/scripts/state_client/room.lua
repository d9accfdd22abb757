-- A room whose state after tick n is expected(n) (expected.lua), reached by
-- changing room.state in place: fields change, players leave and come back
-- as new tables, a root field comes and goes.
local expected = require("expected")
local n = 0

local function apply(dst, src)
  for k in pairs(dst) do
    if src[k] == nil then dst[k] = nil end
  end
  for k, v in pairs(src) do
    if type(v) == "table" then
      if type(dst[k]) ~= "table" then dst[k] = {} end
      apply(dst[k], v)
    else
      dst[k] = v
    end
  end
end

function room.create() apply(room.state, expected(0)) end

function room.tick()
  n = n + 1
  apply(room.state, expected(n))
end
