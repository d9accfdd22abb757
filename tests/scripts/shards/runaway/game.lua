-- A fetched client.tick that never returns on its third tick, even trying to
-- swallow the budget error with pcall, and one that allocates without end on
-- its fifth; later ticks report the client alive.
local said = false
local said_memory = false

function client.tick(n)
  if n == 3 then
    print("runaway starts")
    while true do
      pcall(function()
        while true do end
      end)
    end
  end
  if n > 3 and not said then
    said = true
    print("alive after runaway, tick " .. n)
  end
  if n == 5 then
    print("hoarding starts")
    local hoard = {}
    for i = 1, math.maxinteger do
      hoard[i] = ("x"):rep(1000) .. i
    end
  end
  if n > 5 and not said_memory then
    said_memory = true
    print("alive after hoarding, tick " .. n)
  end
end

function client.connect()
  print("runaway connect")
end
