-- The state room.lua holds after tick n: shared by the room and the client
-- (the client checks every state it sees against it).
return function(n)
  local players = {}
  for i = 1, 8 do
    if (n + i) % 5 ~= 0 then
      players[i] = { hp = (n * i) % 100, x = n * 0.5 + i, name = "p" .. i .. "_" .. (n - n % 3) }
      if i % 2 == 0 then players[i].inv = { (n // 4) % 7, "k" .. (n // 10) } end
    end
  end
  return { tick = n, players = players, phase = (n // 20) % 2 == 0 and "even" or nil }
end
