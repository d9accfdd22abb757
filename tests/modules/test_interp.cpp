// scripts/nshost/interp.lua: interpolation at a known render time, the
// adaptive render delay under injected jitter, bounded and counted
// extrapolation, underruns, and the buffer's budget. Each case runs in a
// fresh server state with the clock stepped by hand (the module reads no
// time); the Lua checks raise on a mismatch, so a case passes only when eval
// answers "ok".
#include <doctest/doctest.h>

#include <string>

#include "tests/support/roles.hpp"

using nshost::test::RoleFixture;

namespace {

const char* kPrelude = R"lua(
local interp = require('nshost.interp')
local function eq(a, b, what) assert(a == b, ("%s: %s ~= %s"):format(what, tostring(a), tostring(b))) end
local function near(a, b, tol, what)
  assert(math.abs(a - b) <= tol, ("%s: %s not within %s of %s"):format(what, tostring(a), tol, tostring(b)))
end
)lua";

std::string run(const std::string& code, nshost::Options options = {}) {
  RoleFixture f;
  nshost::ServerRole& server = f.start_server("", options);
  return RoleFixture::eval(server.script()->state(), kPrelude + code);
}

}  // namespace

TEST_CASE("interp: between two states at known times the drawn value is the known one") {
  CHECK(run(R"lua(
    -- a fixed delay of 2 frames; every state arrives exactly 100 ms after its tick
    local v = interp.new{ tick_rate = 30, min_frames = 2, initial_frames = 2, max_frames = 2 }
    local function at(tick) return tick / 30 + 0.1 end
    v:push(10, { a = { x = 0, y = 10, name = "p1", alive = true }, gone = { x = 1 } }, at(10))
    v:push(11, { a = { x = 3, y = 20, name = "p2", alive = false }, new = { x = 7 } }, at(11))
    eq(v:delay_frames(), 2, "fixed delay")
    -- render tick 10.25 is shown at the arrival time of tick 12.25
    near(v:render_tick(at(12.25)), 10.25, 1e-9, "render tick")
    local d = v:sample(at(12.25))
    near(d.a.x, 0.75, 1e-9, "x a quarter of the way")
    near(d.a.y, 12.5, 1e-9, "y a quarter of the way")
    eq(d.a.name, "p1", "a string snaps to the older state")
    eq(d.a.alive, true, "a boolean snaps to the older state")
    eq(d.gone, nil, "absent from the newer state: gone")
    eq(d.new.x, 7, "new in the newer state: shown as it is")
    d = v:sample(at(12.9))
    near(d.a.x, 2.7, 1e-9, "x at 0.9") eq(d.a.name, "p1", "still the older")
    d = v:sample(at(13))
    eq(d.a.x, 3, "on the newer state") eq(d.a.name, "p2", "its string")
    d = v:sample(at(11))
    eq(d.a.x, 0, "before the oldest state: the oldest")
    local st = v:stats()
    eq(st.extrapolations, 0, "no extrapolation") eq(st.underruns, 0, "no underrun")
    -- a stale or repeated tick is ignored
    eq(v:push(11, { a = { x = 99 } }, at(11)), false, "repeated tick")
    eq(v:stats().stale, 1, "counted")
  )lua") == "ok");
}

TEST_CASE("interp: the delay rises with injected jitter, settles near the jitter-driven value, and decays after") {
  // 30 states a second delivered in order (as ENet's reliable channel does),
  // each sent 100 ms before it arrives plus the phase's jitter; the client
  // draws at 60 frames a second. Defaults of seed 002: min 2, initial 6,
  // max 30 frames, 60 samples, safety 2.
  CHECK(run(R"lua(
    local v = interp.new{ tick_rate = 30 }
    eq(v:delay_frames(), 6, "initial")
    local seed = 12345
    local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648 return seed / 2147483648 end
    local tick, last_arrival, frame_t = 0, 0, 0
    local max_rise, max_fall = 0, 0
    local function phase(seconds, jitter_s, probe)
      local stop = frame_t + seconds
      local pending = nil
      while frame_t < stop do
        frame_t = frame_t + 1 / 60
        while true do
          if not pending then
            tick = tick + 1
            local arrival = tick / 30 + 0.1 + (rnd() * 2 - 1) * jitter_s
            if arrival < last_arrival then arrival = last_arrival end
            last_arrival = arrival
            pending = arrival
          end
          if pending > frame_t then break end
          local before = v:delay_frames()
          v:push(tick, { a = { x = tick } }, pending)
          local change = v:delay_frames() - before
          if change > max_rise then max_rise = change end
          if -change > max_fall then max_fall = -change end
          pending = nil
        end
        local d = v:sample(frame_t)
        if probe then probe(frame_t, d) end
      end
      tick = tick - 1   -- the state still pending goes again in the next phase
      last_arrival = frame_t
    end
    phase(3, 0)
    assert(v:delay_frames() > 3, "falls slowly: " .. v:delay_frames())
    phase(7, 0)
    eq(v:delay_frames(), 2, "no jitter: the minimum")
    local start = frame_t
    local risen_at
    phase(20, 0.1, function(t)
      if not risen_at and v:delay_frames() > 3 then risen_at = t - start end
    end)
    -- the window of 60 arrivals fills in 2 s; the delay follows it up
    assert(risen_at and risen_at < 2, "rises fast: " .. tostring(risen_at))
    local st = v:stats()
    local expected = 2 * st.jitter_ms / 1000 * 30 + 1
    near(st.target_frames, expected, 1e-9, "target = safety * jitter + 1 frame")
    near(st.delay_frames, expected, 0.5, "settles at the jitter-driven value")
    assert(st.jitter_ms > 30 and st.jitter_ms < 70, "jitter measured " .. st.jitter_ms)
    assert(st.delay_frames < 8, "far from the maximum: " .. st.delay_frames)
    phase(1, 0)
    assert(v:delay_frames() > 2.4, "decays slowly: " .. v:delay_frames())
    phase(15, 0)
    eq(v:delay_frames(), 2, "back to the minimum")
    assert(max_rise > 0.1 and max_rise <= 0.5 + 1e-9, "rises by at most rise_frames per arrival: " .. max_rise)
    near(max_fall, 0.03, 1e-9, "falls by at most decay_ms (1 ms) per arrival")
  )lua") == "ok");
}

TEST_CASE("interp: extrapolation is bounded and counted, and a dry buffer is an underrun") {
  CHECK(run(R"lua(
    local v = interp.new{ tick_rate = 10, min_frames = 2, initial_frames = 2, max_frames = 2,
                          max_extrapolate_frames = 3 }
    local function at(tick) return tick / 10 + 0.05 end
    for t = 1, 5 do v:push(t, { a = { x = t * 2, k = "s" .. t } }, at(t)) end
    -- render tick = arrival tick - 2
    near(v:sample(at(7)).a.x, 10, 1e-9, "on the newest state")
    local d = v:sample(at(8.5))
    near(d.a.x, 13, 1e-9, "1.5 frames past the newest, extrapolated along the last step")
    eq(d.a.k, "s5", "a string is held")
    v:sample(at(9))
    local st = v:stats()
    eq(st.extrapolations, 1, "one extrapolation, however many samples") eq(st.underruns, 0, "no underrun yet")
    d = v:sample(at(12))
    near(d.a.x, 16, 1e-9, "held at max_extrapolate_frames past the newest")
    v:sample(at(20))
    near(v:sample(at(30)).a.x, 16, 1e-9, "still held")
    st = v:stats()
    eq(st.underruns, 1, "one underrun") eq(st.extrapolations, 1, "still one extrapolation")
    -- states arrive again: interpolation resumes, and the next gap counts again
    for t = 6, 29 do v:push(t, { a = { x = t * 2 } }, at(t)) end
    near(v:sample(at(28.5)).a.x, 53, 1e-9, "interpolating")
    v:sample(at(31.5))
    st = v:stats()
    eq(st.extrapolations, 2, "a second extrapolation") eq(st.underruns, 1, "no second underrun")
  )lua") == "ok");
}

TEST_CASE("interp: the buffer, the entities and their fields are capped; misuse raises") {
  CHECK(run(R"lua(
    local v = interp.new{ tick_rate = 30, max_states = 40, max_entities = 3, max_fields = 2 }
    local many = {}
    for i = 1, 10 do many[i] = { x = i, y = i, z = i, w = {} } end
    for t = 1, 1000 do v:push(t, many, t / 30) end
    local st = v:stats()
    eq(st.states, 40, "states capped without any sample") eq(st.truncated, 1000, "entities past the cap counted")
    local d = v:sample(1000 / 30)
    local n = 0
    for _, e in pairs(d) do
      n = n + 1
      local f = 0
      for _ in pairs(e) do f = f + 1 end
      assert(f <= 2, "fields capped: " .. f)
    end
    eq(n, 3, "entities capped")
    local ok, err = pcall(v.push, v, 1.5, {}, 0)
    assert(not ok and err:find("interp.push: tick must be an integer", 1, true), err)
    ok, err = pcall(v.sample, v, 0 / 0)
    assert(not ok and err:find("interp.sample: now must be a finite number", 1, true), err)
    ok, err = pcall(interp.new, { tick_rate = 30, max_frames = 63 })
    assert(not ok and err:find("max_states must be >= max_frames + 2", 1, true), err)
    ok, err = pcall(interp.new, {})
    assert(not ok and err:find("interp.new: tick_rate must be a number > 0", 1, true), err)
    eq(next(interp.new{ tick_rate = 30 }:sample(0)), nil, "nothing pushed: nothing drawn")
  )lua") == "ok");
}

TEST_CASE("interp: works in a sandboxed state") {
  nshost::Options options;
  options.sandbox = true;
  CHECK(run(R"lua(
    assert(sys.sandboxed())
    local v = interp.new{ tick_rate = 30, min_frames = 1, initial_frames = 1 }
    v:push(1, { a = { x = 0 } }, 1 / 30)
    v:push(2, { a = { x = 1 } }, 2 / 30)
    near(v:sample(2.5 / 30).a.x, 0.5, 1e-9, "halfway")
  )lua",
            options) == "ok");
}
