-- The server of the client state-sync end-to-end test
-- (tests/integration/test_state_client.cpp): one room type whose state is a
-- pure function of its tick count (see room.lua), so a client can check any
-- state it sees.
rooms.define("state_arena", "room.lua", { max_clients = 8, tick_rate = 30 })
rooms.define("state_idle", "idle_room.lua", { max_clients = 8, tick_rate = 30 })
