-- The server of tests/integration/test_state_server.cpp: rooms whose
-- room.state is replicated to their clients (docs/state.md).
rooms.define("state", "state_room.lua", { max_clients = 8 })
rooms.define("big", "state_room.lua", { max_clients = 8 })
rooms.define("typed", "state_room.lua", { max_clients = 8 })
