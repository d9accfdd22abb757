-- A room that fails: every tick raises, and "spin" never returns (stopped by
-- --handler-timeout). Its neighbours must not notice.
function room.join(c) print(("join failing %d client %d"):format(room.id, c.id)) end
function room.tick(n) error("tick " .. n .. " failed on purpose") end
function room.message(c, type)
  if type == "spin" then while true do end end
end
function room.dispose() print(("dispose %d"):format(room.id)) end
