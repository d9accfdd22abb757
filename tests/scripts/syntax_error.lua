-- Line 3 has a syntax error on purpose.
local x = 1
local y = = 2
