-- A broken edit of game.lua: a syntax error on line 4.
count = count or 0
function server.receive(c, data)
  send(c, "v3 count=" .. count
end
