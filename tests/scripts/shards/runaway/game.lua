-- A fetched client.tick that never returns on its third tick, even trying to
-- swallow the budget error with pcall; later ticks report the client alive.
local said = false

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
end

function client.connect()
  print("runaway connect")
end
