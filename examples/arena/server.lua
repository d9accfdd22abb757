-- Arena: a top-down tag match on rooms, state sync and nshost's netcode
-- modules (docs/netcode.md "The arena example"). This file is the entry for
-- both roles: the server defines the room type, a client runs client.lua.
-- Commands: examples/arena/README.md.
local arena = require("step")

if sys.runtime_role() == "server" then
  rooms.define("arena", "arena_room.lua", { max_clients = 64, tick_rate = arena.TICK_RATE })
else
  require("client")
end
