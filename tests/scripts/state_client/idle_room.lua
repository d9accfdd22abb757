-- A room whose state changes once at tick 1 and once more at tick 120 (4 s
-- at 30 Hz), idle in between: longer than the test's --state-ack-timeout.
local n = 0
function room.tick()
  n = n + 1
  if n == 1 then room.state.phase = "start" end
  if n == 120 then room.state.phase = "later" end
end
