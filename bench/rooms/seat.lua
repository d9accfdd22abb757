-- The join bench's room (bench/rooms_join.lua): holds its seats and logs its
-- size on every change, which the bench reads to check that no room ever held
-- more than its max_clients.
local seated = 0

function room.join(c, options)
  seated = seated + 1
  log.info(("seat room=%d clients=%d"):format(room.id, seated))
end

function room.leave(c, reason)
  seated = seated - 1
end
