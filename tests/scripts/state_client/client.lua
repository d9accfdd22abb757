-- The client of the state-sync end-to-end test: joins "state_arena", checks
-- every r.state it is shown against expected(state.tick), and after CHECKS
-- states prints its counts and quits. NAME tags its lines. ROOM_TYPE=state_idle:
-- prints each phase the idle room shows and quits at "later".
local expected = require("expected")
local name = os.getenv("NAME") or "c"
local wanted = tonumber(os.getenv("CHECKS") or "60")
local room_type = os.getenv("ROOM_TYPE") or "state_arena"

local function say(s) print(name .. " " .. s) io.stdout:flush() end

local function render(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if math.type(v) == "float" then return ("%.17gf"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. render(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local checks, bad, hp_events = 0, 0, 0

function client.connect()
  rooms.join_or_create(room_type, nil, function(r, err, code)
    if not r then
      say("join failed " .. tostring(err) .. " " .. tostring(code))
      return
    end
    say("joined " .. tostring(r))
    r:on_change({ "players", "*", "hp" }, function(key, value, old) hp_events = hp_events + 1 end)
  end)
end

function client.room_state(r, state, changes)
  if room_type == "state_idle" then
    say("phase " .. tostring(state.phase))
    if state.phase == "later" then sys.quit() end
    return
  end
  checks = checks + 1
  if render(state) ~= render(expected(state.tick)) then
    bad = bad + 1
    if bad <= 3 then say("mismatch at tick " .. tostring(state.tick) .. ": " .. render(state)) end
  end
  if checks == 1 then say("first state equal=" .. tostring(bad == 0) .. " late=" .. tostring(state.tick > 0)) end
  if checks == wanted then
    local s = r:state_stats()
    say(("done checks=%d bad=%d snapshots=%d patches=%d checksum_mismatches=%d gaps=%d decode_errors=%d hp_events=%s"):format(
      checks, bad, s.snapshots, s.patches, s.checksum_mismatches, s.gaps, s.decode_errors, tostring(hp_events > 0)))
    sys.quit()
  end
end
