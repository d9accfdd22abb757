-- Rooms bench, arena workload (docs/benchmarks.md, Rooms): the Colyseus rooms
-- anchor's workload (../shared/anchors/colyseus-rooms/) in nshost rooms.
-- Server: room type "arena" of 8 seats (bench/rooms/arena.lua). Each bot
-- joins with rooms.join_or_create("arena"), then sends its input {dx, dy}
-- (random in [-1, 1]) every client tick (30 Hz) as room message "in"; the
-- room broadcasts "state" every tick.
-- Channel: ARENA_CHANNEL=unreliable (default) sends both "in" and "state"
-- unreliable: each input supersedes the last and each state message carries
-- every player's full state, so a lost one is replaced a tick later (seed
-- 003's policy for transient data). ARENA_CHANNEL=reliable sends both
-- reliable, as the anchor's WebSocket does (it must: its patches are deltas).
-- ARENA_SYNC=state: the room keeps its players in room.state
-- (bench/rooms/arena_state.lua, the anchor's schema) and state sync sends each
-- client its patches (reliable, as the anchor's); the bots count the patches
-- applied (client.room_state) instead of state messages, and print a second
-- line at the window's end:
--   bench state applied=<n> seq_span=<n> resyncs=<n> mismatches=<n> gaps=<n> decode_errors=<n> frame_bytes=<n>
-- (frame_bytes: of the state frames received in the window, without ENet's headers)
-- ARENA_VIEW=K adds a K-nearest view per client (see the room file).
-- Counting as bench/bench_client.lua (BENCH_START, BENCH_WINDOW); at the
-- window's end each bot prints the same line, with snaps = state messages:
--   bench snaps=<n> entries=<players in them> max_entries=<n> ticks=<tick span> rtt_ms=
--   nshost --role=server --max-clients=256 --stats bench/arena.lua
--   nshost --role=client --headless --bots=256 bench/arena.lua
local channel = os.getenv("ARENA_CHANNEL") or "unreliable"
if channel ~= "reliable" and channel ~= "unreliable" then
  error("ARENA_CHANNEL must be reliable or unreliable, not " .. channel)
end

local sync = os.getenv("ARENA_SYNC") or "messages"
if sync ~= "messages" and sync ~= "state" then error("ARENA_SYNC must be messages or state, not " .. sync) end
local room_size = tonumber(os.getenv("ARENA_ROOM_SIZE") or "8")

if sys.runtime_role() == "server" then
  local policy = channel == "unreliable" and { "in", "state" } or {}
  local file = sync == "state" and "rooms/arena_state.lua" or "rooms/arena.lua"
  rooms.define("arena", file, { max_clients = room_size, unreliable = policy })
end

local window_start = tonumber(os.getenv("BENCH_START") or "0")
local window_s = tonumber(os.getenv("BENCH_WINDOW") or "")
local window_end = window_s and window_start + window_s or math.huge
local random = math.random
local arena
local snaps, entries, max_entries, first_tick, last_tick = 0, 0, 0, nil, nil
local done = false
local applied, first_seq, last_seq, first_bytes, last_bytes = 0, nil, nil, nil, nil
local input = {}

function client.connect()
  local ok, err = rooms.join_or_create("arena", {}, function(r, join_err)
    if r then
      arena = r
    else
      print("bench join failed: " .. tostring(join_err))
    end
  end)
  if not ok then print("bench join failed: " .. tostring(err)) end
end

function client.tick()
  if done then return end
  if sys.time() >= window_end then
    done = true
    local ticks = first_tick and last_tick - first_tick + 1 or 0
    if sync == "state" then ticks = first_seq and last_seq - first_seq + 1 or 0 end
    print(("bench snaps=%d entries=%d max_entries=%d ticks=%d rtt_ms="):format(snaps, entries, max_entries, ticks))
    if sync == "state" then
      local st = arena and arena:state_stats() or {}
      print(("bench state applied=%d seq_span=%d resyncs=%d mismatches=%d gaps=%d decode_errors=%d frame_bytes=%d")
        :format(applied, first_seq and last_seq - first_seq + 1 or 0, st.resyncs or 0, st.checksum_mismatches or 0,
        st.gaps or 0, st.decode_errors or 0, first_bytes and last_bytes - first_bytes or 0))
    end
    sys.quit(0)
    return
  end
  if arena then
    input[1], input[2] = random() * 2 - 1, random() * 2 - 1
    arena:send("in", input, channel)
  end
end

function client.room_message(r, kind, data)
  local now = sys.time()
  if kind ~= "state" or now < window_start or now >= window_end then return end
  local tick, count = data[1], (#data - 1) // 5
  if not first_tick or tick < first_tick then first_tick = tick end
  if not last_tick or tick > last_tick then last_tick = tick end
  snaps = snaps + 1
  entries = entries + count
  if count > max_entries then max_entries = count end
end

-- State sync: one call per snapshot or patch applied.
function client.room_state(r, state)
  local now = sys.time()
  if now < window_start or now >= window_end then return end
  local st = r:state_stats()
  if not first_seq then first_seq, first_bytes = st.seq, st.bytes end
  last_seq, last_bytes = st.seq, st.bytes
  applied = applied + 1
  snaps = snaps + 1
  local count = 0
  for _ in pairs(state.players or {}) do count = count + 1 end
  entries = entries + count
  if count > max_entries then max_entries = count end
end

function client.room_left(r, reason)
  if not done then print("bench room left: " .. tostring(reason)) end
end

function client.disconnect(reason)
  if not done and window_s then print("bench disconnected: " .. reason) end
end
