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
  return RoleFixture::in_fresh_server(kPrelude + code, std::move(options));
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
  std::string out = run(R"lua(
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
    assert(risen_at and risen_at < 1, "rises fast: " .. tostring(risen_at))
    local st = v:stats()
    local expected = math.max(2 * st.jitter_ms, st.late_ms + st.jitter_ms) / 1000 * 30 + 1
    near(st.target_frames, expected, 1e-9, "target = max(safety * jitter, late + jitter) + 1 frame")
    assert(st.delay_frames >= expected - 1e-9 and st.delay_frames < expected + 1.5,
      ("settles at the jitter-driven value: %.2f for %.2f"):format(st.delay_frames, expected))
    assert(st.jitter_ms > 30 and st.jitter_ms < 70, "jitter measured " .. st.jitter_ms)
    assert(st.late_ms > st.jitter_ms and st.late_ms < 150, "latest arrival " .. st.late_ms)
    assert(st.delay_frames < 8, "far from the maximum: " .. st.delay_frames)
    local summary = ("jittered: above 3 frames after %.2f s, delay=%.2f target=%.2f jitter=%.1f ms latest=%.1f ms "
      .. "extrapolations=%d underruns=%d"):format(risen_at, st.delay_frames, st.target_frames, st.jitter_ms,
      st.late_ms, st.extrapolations, st.underruns)
    phase(1, 0)
    assert(v:delay_frames() > 2.4, "decays slowly: " .. v:delay_frames())
    phase(15, 0)
    eq(v:delay_frames(), 2, "back to the minimum")
    assert(max_rise > 0.1 and max_rise <= 0.5 + 1e-9, "rises by at most rise_frames per arrival: " .. max_rise)
    near(max_fall, 0.03, 1e-9, "falls by at most decay_ms (1 ms) per arrival")
    return summary
  )lua");
  CHECK(out.rfind("ok: ", 0) == 0);
  MESSAGE(out);
}

TEST_CASE("interp: behind a reliable channel's retransmit stalls (100 +- 20 ms, 5 % loss) extrapolation is rare") {
  // 30 states/s in order; a lost one is resent a round trip later and holds
  // back the ones after it (a stall, then a burst), as ENet's reliable
  // channel does. The client draws at 60 frames/s for 60 s.
  std::string out = run(R"lua(
    local v = interp.new{ tick_rate = 30 }
    local seed = 11
    local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648 return seed / 2147483648 end
    local queue, last_at, tick = {}, 0, 0
    local t, next_frame, next_tick = 0, 0, 0
    local at_10s, low, high = nil, math.huge, 0
    while t < 60 do
      if next_frame <= next_tick then
        t, next_frame = next_frame, next_frame + 1 / 60
        while queue[1] and queue[1].at <= t do
          local m = table.remove(queue, 1)
          v:push(m.tick, { a = { x = m.tick } }, m.at)
        end
        v:sample(t)
        if t >= 10 then
          at_10s = at_10s or v:stats()
          low, high = math.min(low, v:delay_frames()), math.max(high, v:delay_frames())
        end
      else
        t, next_tick = next_tick, next_tick + 1 / 30
        tick = tick + 1
        local at = t + 0.1 + (rnd() * 2 - 1) * 0.02
        if rnd() < 0.05 then at = at + 0.25 end
        if at < last_at then at = last_at end
        last_at = at
        queue[#queue + 1] = { at = at, tick = tick }
      end
    end
    local st = v:stats()
    assert(st.extrapolations - at_10s.extrapolations <= 1, "extrapolations after 10 s: " .. st.extrapolations)
    eq(st.underruns, 0, "underruns")
    assert(low > 5 and high < 15, ("the delay stays between %.2f and %.2f frames"):format(low, high))
    return ("extrapolations=%d (after 10 s: %d) underruns=%d delay from 10 s: %.2f..%.2f frames, jitter=%.1f ms, "
      .. "latest=%.1f ms"):format(st.extrapolations, st.extrapolations - at_10s.extrapolations, st.underruns, low, high,
      st.jitter_ms, st.late_ms)
  )lua");
  CHECK(out.rfind("ok: ", 0) == 0);
  MESSAGE(out);
}

TEST_CASE("interp: an unreliable stream (100 +- 20 ms, 5 % loss, no resend) settles within 10 s with under 1 extrapolation a minute") {
  // 30 states/s, each lost with probability 0.05 and otherwise delayed
  // 100 ms +- 20 ms on its own (so they may arrive out of order: an older
  // one than the newest pushed is refused, as a sequenced channel would
  // drop it). Drawn at 60 frames/s for 120 s. Without the gap term the
  // delay sat at the minimum (2 frames) and every lost state with a late
  // successor was drawn extrapolated (about 40 a minute).
  std::string out = run(R"lua(
    local function simulate(options)
      local v = interp.new(options)
      local seed = 7
      local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648 return seed / 2147483648 end
      local queue, tick = {}, 0
      local t, next_frame, next_tick = 0, 0, 0
      local at_10s, low, high, settled_by = nil, math.huge, 0, nil
      while t < 120 do
        if next_frame <= next_tick then
          t, next_frame = next_frame, next_frame + 1 / 60
          table.sort(queue, function(a, b) return a.at < b.at end)
          while queue[1] and queue[1].at <= t do
            local m = table.remove(queue, 1)
            v:push(m.tick, { a = { x = m.tick } }, m.at)
          end
          v:sample(t)
          if t >= 10 then
            at_10s = at_10s or v:stats()
            low, high = math.min(low, v:delay_frames()), math.max(high, v:delay_frames())
          end
        else
          t, next_tick = next_tick, next_tick + 1 / 30
          tick = tick + 1
          if rnd() >= 0.05 then queue[#queue + 1] = { at = t + 0.1 + (rnd() * 2 - 1) * 0.02, tick = tick } end
        end
      end
      local st = v:stats()
      return st, st.extrapolations - at_10s.extrapolations, low, high
    end
    local st, after, low, high = simulate{ tick_rate = 30 }
    assert(after <= 1, "extrapolations after 10 s: " .. after)
    eq(st.underruns, 0, "underruns")
    assert(low >= 3 and high < 7, ("from 10 s the delay stays between %.2f and %.2f frames"):format(low, high))
    assert(st.loss > 0.01 and st.loss < 0.12, "loss measured " .. st.loss)
    eq(st.gap_frames, 3, "covers two lost states in a row")
    assert(st.stale > 0, "some states arrived out of order and were refused")
    -- The same stream against seed 002's target alone (no run of lost states covered).
    local plain, plain_after = simulate{ tick_rate = 30, rare_gaps_per_min = 1e9 }
    assert(plain_after > 20, "without the gap term it extrapolates: " .. plain_after)
    return ("extrapolations=%d (after 10 s: %d) underruns=%d stale=%d delay from 10 s: %.2f..%.2f frames, "
      .. "jitter=%.1f ms, loss=%.3f, gap=%d; without the gap term: %d after 10 s, delay %.2f"):format(
      st.extrapolations, after, st.underruns, st.stale, low, high, st.jitter_ms, st.loss, st.gap_frames, plain_after,
      plain.delay_frames)
  )lua");
  CHECK(out.rfind("ok: ", 0) == 0);
  MESSAGE(out);
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

TEST_CASE("interp: the buffer, the entities and their fields are capped, and misuse raises") {
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
