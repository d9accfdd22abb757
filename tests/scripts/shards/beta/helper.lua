-- Tree "beta": a module, so the fetched bundle has to serve require.
-- The comment below pads the tree past 1 KiB for the bundle-limit test.
-- Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod
-- tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam,
-- quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo
-- consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse
-- cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat
-- non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.
local M = {}

function M.greeting(name)
  return "beta greets " .. name
end

return M
