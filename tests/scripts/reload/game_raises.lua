-- A broken edit of game.lua: it replaces server.receive, then its top level
-- raises on line 7; the reload is rejected and the old handler stays.
count = count or 0
function server.receive(c, data)
  send(c, "v4 count=" .. count)
end
error("top level fails after replacing server.receive")
