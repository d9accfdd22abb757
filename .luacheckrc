-- luacheck (Debian lua-check) over the Lua nshost ships and runs: examples/,
-- scripts/, bench/ (.ci/run). The globals are the builtins every state gets
-- (docs/scripting.md); server, client and room are the handler tables a
-- script defines its handlers on.
std = "lua54"
globals = { "server", "client", "room" }
read_globals = {
  "sys", "log", "json", "net", "rooms", "timer", "term", "matchmaking",
  "tick_rate", "set_tick_rate", "max_clients", "server_tick_rate", "server_tick",
  "slot", "connected", "send", "broadcast", "kick", "redirect", "hop",
}
-- Handlers take the arguments the host passes; naming them documents the
-- signature even where a script does not read them.
unused_args = false
max_line_length = 120
-- Read by bench/patterns_bench.cpp from the global table.
files["bench/patterns.lua"] = { globals = { "workloads" } }
-- The one-line command at the top is meant to be pasted whole.
files["examples/rooms/game.lua"] = { ignore = { "631" } }
