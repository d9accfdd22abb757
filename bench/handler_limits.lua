-- Cost of the handler limits on pure-Lua code (docs/shards.md, Limits):
-- one tight arithmetic loop per tick, five ticks, prints the median CPU time.
--   nshost --role=server --port=0 --sandbox [--handler-timeout=0 |
--          --instruction-budget=1000000000 --handler-timeout=0] bench/handler_limits.lua
local runs = {}
function server.tick(n)
  if n < 1 then return end
  local t0 = os.clock()
  local x = 0
  for i = 1, 2e7 do x = x + i % 7 end
  runs[#runs + 1] = os.clock() - t0
  if #runs == 5 then
    table.sort(runs)
    print(("median %.3f s"):format(runs[3]))
    sys.quit(0)
  end
end
