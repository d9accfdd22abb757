-- Shards example, the lobby tree (docs/shards.md). Run it on two servers
-- (lobby-1 and lobby-2) and the arena tree on a third:
--   LOBBY_NAME=lobby-1 ARENA_URL=nshost://127.0.0.1:7102 NEXT_LOBBY_URL=nshost://127.0.0.1:7103 \
--     nshost --role=server --port=7101 examples/shards/lobby/game.lua
--   LOBBY_NAME=lobby-2 ARENA_URL=nshost://127.0.0.1:7102 \
--     nshost --role=server --port=7103 examples/shards/lobby/game.lua
--   LOBBY_URL=nshost://127.0.0.1:7101 nshost --role=server --port=7102 examples/shards/arena/game.lua
--   nshost --role=client --headless nshost://127.0.0.1:7101
-- The player is named by lobby-1, hops to lobby-2 (same tree: its Lua state,
-- name and visit count included, carries over), hops to the arena carrying
-- its name in the handoff (different tree: fetched, fresh state), and is
-- redirected back to lobby-1 at round end with its score in the handoff.

-- Server side: tells each joiner where the arena and the next lobby are.
-- A fetched copy (the client side) runs sandboxed, without os.getenv.
local lobby_name = not sys.sandboxed() and os.getenv("LOBBY_NAME") or "lobby"

function server.connect(c, handoff)
  local env = os.getenv
  local fields = {
    lobby_name,
    env("ARENA_URL") or "",
    env("NEXT_LOBBY_URL") or "",
    "guest-" .. slot(c),
    handoff,
  }
  print(("%s: player in slot %d arrived (handoff %q)"):format(lobby_name, slot(c), handoff))
  send(c, table.concat(fields, "|"))
end

function server.disconnect(c, reason)
  print(("%s: slot %d left (%s)"):format(lobby_name, slot(c), reason))
end

-- Client side. These survive a hop to a shard serving this same tree.
local name
local visits = 0

function client.connect(handoff)
  visits = visits + 1
end

local function split(s)
  local out = {}
  for part in (s .. "|"):gmatch("([^|]*)|") do out[#out + 1] = part end
  return out
end

function client.receive(data)
  local lobby, arena_url, next_lobby_url, suggested, handoff = table.unpack(split(data))
  if handoff:find(" scored ") then
    name = handoff:match("^(.-) scored ")
    print(("%s: back from the arena, %s (visit %d of this state)"):format(lobby, handoff, visits))
    sys.quit()
    return
  end
  name = name or suggested
  print(("%s: hello %s, visit %d of this state"):format(lobby, name, visits))
  if next_lobby_url ~= "" then
    print(lobby .. ": hopping to the next lobby")
    hop(next_lobby_url, name)
  elseif arena_url ~= "" then
    print(lobby .. ": hopping to the arena")
    hop(arena_url, name)
  end
end

function client.disconnect(reason)
  print("lobby client disconnected: " .. reason)
end
