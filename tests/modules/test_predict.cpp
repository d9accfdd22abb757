// scripts/nshost/predict.lua: reconciliation against a server that runs the
// same step function, the inputs it replays, smoothing and snapping, and the
// history's budget. Each case runs in a fresh server state with time passed
// in by hand; the Lua checks raise on a mismatch, so a case passes only when
// eval answers "ok".
#include <doctest/doctest.h>

#include <string>

#include "tests/support/roles.hpp"

using nshost::test::RoleFixture;

namespace {

// A step with a wall and a speed cap, so that a correction does not simply
// shift every later position by the same amount.
const char* kPrelude = R"lua(
local predict = require('nshost.predict')
local input = require('nshost.input')
local function eq(a, b, what) assert(a == b, ("%s: %s ~= %s"):format(what, tostring(a), tostring(b))) end
local replayed_ids = {}
local function step(s, cmd, dt)
  replayed_ids[#replayed_ids + 1] = cmd.id
  s.vx = math.max(-150, math.min(150, s.vx + cmd.dx * 400 * dt))
  s.x = math.min(100, s.x + s.vx * dt)
  s.y = s.y + cmd.dy * 90 * dt
end
)lua";

std::string run(const std::string& code, nshost::Options options = {}) {
  return RoleFixture::in_fresh_server(kPrelude + code, std::move(options));
}

}  // namespace

TEST_CASE("predict: without a mismatch the prediction equals the server's state and nothing is corrected") {
  CHECK(run(R"lua(
    local dt = 1 / 30
    local p = predict.new{ step = step, state = { x = 0, y = 0, vx = 0 }, dt = dt, fields = { "x", "y" } }
    local server = { x = 0, y = 0, vx = 0 }
    for seq = 1, 20 do
      local cmd = { id = seq, dx = 1, dy = seq % 3 - 1 }
      p:apply(seq, cmd)
      step(server, cmd, dt)
      if seq % 4 == 0 then eq(p:reconcile(server, seq), 0, "error at " .. seq) end
    end
    eq(p.state.x, server.x, "x") eq(p.state.y, server.y, "y")
    local st = p:stats()
    eq(st.corrections, 0, "corrections") eq(st.snaps, 0, "snaps") eq(st.reconciles, 5, "reconciles")
    eq(p:render().x, server.x, "render is the state")
  )lua") == "ok");
}

TEST_CASE("predict: reconcile after a mismatch replays exactly the unacked inputs and lands on the server's result") {
  CHECK(run(R"lua(
    local dt = 1 / 30
    local fields = { dx = "i8", dy = "i8", id = "u16" }
    local sender = input.sender{ fields = fields }
    local inbox = input.receiver{ fields = fields }
    local p = predict.new{ step = step, state = { x = 0, y = 0, vx = 0 }, dt = dt, fields = { "x", "y" } }
    local server = { x = 0, y = 0, vx = 0 }
    -- the client predicts 10 inputs; the server receives and applies the
    -- first 6 (the state for ack 6 is in flight while the client runs on),
    -- but something the client cannot predict (a push from another player)
    -- moves it after the 3rd
    local in_flight = {}
    for i = 1, 10 do
      local seq, cmd = sender:push({ id = i, dx = i <= 5 and 1 or -1, dy = 1 })
      p:apply(seq, cmd)
      if i <= 6 then
        assert(inbox:receive("me", sender:packet()))
        step(server, inbox:take("me"), dt)
        if i == 3 then server.x = server.x - 4 server.y = server.y + 3 end
      else
        in_flight[#in_flight + 1] = sender:packet()
      end
    end
    local ack = inbox:ack("me")
    eq(ack, 6, "ack")
    local predicted_at_6 = { x = 0, y = 0, vx = 0 }
    for i = 1, 6 do step(predicted_at_6, { id = i, dx = i <= 5 and 1 or -1, dy = 1 }, dt) end
    replayed_ids = {}
    local err = p:reconcile(server, ack)
    -- the error is the distance between the prediction after seq 6 and the server's state
    local ex, ey = predicted_at_6.x - server.x, predicted_at_6.y - server.y
    assert(math.abs(err - math.sqrt(ex * ex + ey * ey)) < 1e-9, "error " .. err)
    assert(err > 3, "a real mismatch: " .. err)
    eq(table.concat(replayed_ids, ","), "7,8,9,10", "replayed exactly the unacked inputs")
    eq(p:stats().replayed, 4, "counted")
    -- the server goes on with the same inputs: the prediction was its future
    for _, packet in ipairs(in_flight) do
      assert(inbox:receive("me", packet))
      step(server, inbox:take("me"), dt)
    end
    eq(inbox:ack("me"), 10, "the server applied 7..10")
    eq(p.state.x, server.x, "x lands on the server's result")
    eq(p.state.y, server.y, "y lands on the server's result")
    eq(p.state.vx, server.vx, "vx too")
    eq(p:stats().corrections, 1, "one correction")
    -- a stale state (an older ack) is ignored
    eq(p:reconcile({ x = 999, y = 0, vx = 0 }, 5), nil, "stale")
    eq(p.state.x, server.x, "unchanged by a stale state")
    -- an ack the history no longer holds: no error to report, the rewind still happens
    local p2 = predict.new{ step = step, state = { x = 0, y = 0, vx = 0 }, dt = dt, fields = { "x" }, max_history = 2 }
    for seq = 1, 5 do p2:apply(seq, { id = seq, dx = 1, dy = 0 }) end
    eq(p2:reconcile({ x = 50, y = 0, vx = 0 }, 1), nil, "seq 1 is out of the history")
    eq(p2:stats().history, 2, "history capped") eq(p2:stats().dropped, 3, "dropped")
  )lua") == "ok");
}

TEST_CASE("predict: a small correction is smoothed over smooth_frames frames, a large one snaps") {
  CHECK(run(R"lua(
    local function still(s, cmd) s.x = s.x + cmd.dx end
    local p = predict.new{ step = still, state = { x = 0, y = 0 }, dt = 1 / 30, fields = { "x", "y" },
                           smooth_below = 1.0, smooth_frames = 4 }
    p:apply(1, { dx = 10 })
    p:apply(2, { dx = 0 })
    -- the server had 10.4 after seq 1: the prediction jumps 0.4, what is drawn does not
    local err = p:reconcile({ x = 10.4, y = 0 }, 1)
    assert(math.abs(err - 0.4) < 1e-12, err)
    assert(math.abs(p.state.x - 10.4) < 1e-12, "state corrected at once: " .. p.state.x)
    assert(math.abs(p:render().x - 10) < 1e-12, "drawn where it was: " .. p:render().x)
    local drawn = {}
    for seq = 3, 7 do
      p:apply(seq, { dx = 0 })
      drawn[#drawn + 1] = ("%.2f"):format(p:render().x)
    end
    eq(table.concat(drawn, " "), "10.10 10.20 10.30 10.40 10.40", "glides over 4 frames")
    local st = p:stats()
    eq(st.corrections, 1, "corrections") eq(st.smoothed, 1, "smoothed") eq(st.snaps, 0, "snaps")
    -- a 3-4-5 mismatch is above smooth_below: snap
    err = p:reconcile({ x = 13.4, y = 4 }, 7)
    assert(math.abs(err - 5) < 1e-9, err)
    eq(p:render().x, p.state.x, "snapped x") eq(p:render().y, 4, "snapped y")
    st = p:stats()
    eq(st.corrections, 2, "corrections") eq(st.snaps, 1, "snaps")
    assert(math.abs(st.max_error - 5) < 1e-9 and math.abs(st.last_error - 5) < 1e-9)
    -- below epsilon: not a correction
    p:apply(8, { dx = 0 })
    eq(p:reconcile({ x = 13.4 + 1e-9, y = 4 }, 8) < 1e-6, true, "tiny error")
    eq(p:stats().corrections, 2, "not counted")
  )lua") == "ok");
}

TEST_CASE("predict: misuse raises naming the function, and the caller's tables are not shared") {
  CHECK(run(R"lua(
    local init = { x = 1, y = 2, vx = 0, tags = { a = 1 } }
    local p = predict.new{ step = step, state = init, dt = 1 / 30, fields = { "x", "y" } }
    p:apply(1, { id = 1, dx = 1, dy = 1 })
    eq(init.x, 1, "the initial table is copied")
    local auth = { x = 5, y = 5, vx = 0, tags = { a = 2 } }
    p:reconcile(auth, 1)
    p.state.tags.a = 3
    eq(auth.tags.a, 2, "the authoritative table is copied, nested ones too")
    local ok, err = pcall(p.apply, p, 1, {})
    assert(not ok and err:find("predict.apply: seq must be an integer above the last one applied (1)", 1, true), err)
    ok, err = pcall(predict.new, { step = step, state = {}, dt = 0, fields = { "x" } })
    assert(not ok and err:find("predict.new: dt must be", 1, true), err)
    ok, err = pcall(p.reconcile, p, {}, -1)
    assert(not ok and err:find("predict.reconcile: ack must be", 1, true), err)
  )lua") == "ok");
}

TEST_CASE("predict: works in a sandboxed state") {
  nshost::Options options;
  options.sandbox = true;
  CHECK(run(R"lua(
    assert(sys.sandboxed())
    local p = predict.new{ step = step, state = { x = 0, y = 0, vx = 0 }, dt = 1 / 30, fields = { "x", "y" } }
    local server = { x = 0, y = 0, vx = 0 }
    p:apply(1, { id = 1, dx = 1, dy = 1 })
    step(server, { id = 1, dx = 1, dy = 1 }, 1 / 30)
    server.x = server.x + 0.5
    assert(math.abs(p:reconcile(server, 1) - 0.5) < 1e-9, "error")
    eq(p.state.x, server.x, "rewound")
  )lua",
            options) == "ok");
}

TEST_CASE("predict: with nshost.input over a simulated 100 +- 20 ms, 5 % loss link, redundancy and dilation leave nothing to correct") {
  // The whole loop with the clock stepped by hand: the client draws at 60
  // frames/s and runs dil:steps() inputs per frame, each sent unreliable
  // (5 % lost, 100 +- 20 ms); the server ticks at 30 Hz, takes one input per
  // client and sends its state, ack and depth back in order (a lost state is
  // resent after a round trip, as ENet's reliable channel does). Errors are
  // counted after a 5 s warm-up.
  std::string out = run(R"lua(
    local SPEED, RATE = 120, 30
    local dt = 1 / RATE
    local function walk(s, cmd, step_dt) s.x = s.x + cmd.dx * SPEED * step_dt s.y = s.y + cmd.dy * SPEED * step_dt end
    local seed = 7
    local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648 return seed / 2147483648 end
    local function due(queue, now)
      local out, keep = {}, {}
      for _, m in ipairs(queue) do if m.at <= now then out[#out + 1] = m else keep[#keep + 1] = m end end
      table.sort(out, function(a, b) return a.at < b.at end)
      return out, keep
    end
    local function simulate(latency, jitter, loss, redundancy, seconds)
      local fields = { dx = "i8", dy = "i8" }
      local sender = input.sender{ fields = fields, redundancy = redundancy }
      local inbox = input.receiver{ fields = fields, delay_ticks = 0 }
      local dil = input.dilation{ tick_rate = RATE, target_depth = 2 }
      local p = predict.new{ step = walk, state = { x = 0, y = 0 }, dt = dt, fields = { "x", "y" } }
      local server = { x = 0, y = 0 }
      local to_server, to_client, last_state_at = {}, {}, 0
      local errors, cmd = {}, { dx = 0, dy = 0 }
      local t, next_frame, next_tick = 0, 0, 0
      while t < seconds do
        if next_frame <= next_tick then
          t, next_frame = next_frame, next_frame + 1 / 60
          local got
          got, to_client = due(to_client, t)
          for _, m in ipairs(got) do
            sender:ack(m.ack)
            dil:observe(m.depth)
            local err = p:reconcile({ x = m.x, y = m.y }, m.ack)
            if err and t > 5 then errors[#errors + 1] = err end
          end
          for _ = 1, dil:steps(1 / 60) do
            if rnd() < 0.07 then cmd = { dx = math.floor(rnd() * 3) - 1, dy = math.floor(rnd() * 3) - 1 } end
            local seq, kept = sender:push(cmd)
            p:apply(seq, kept)
            local packet = sender:packet()
            if rnd() >= loss then
              to_server[#to_server + 1] = { at = t + latency + (rnd() * 2 - 1) * jitter, data = packet }
            end
          end
        else
          t, next_tick = next_tick, next_tick + dt
          local got
          got, to_server = due(to_server, t)
          for _, m in ipairs(got) do assert(inbox:receive(1, m.data)) end
          local c = inbox:take(1)
          if c then walk(server, c, dt) end
          local at = t + latency + (rnd() * 2 - 1) * jitter
          if rnd() < loss then at = at + 2 * latency + 0.05 end
          if at < last_state_at then at = last_state_at end
          last_state_at = at
          to_client[#to_client + 1] =
            { at = at, x = server.x, y = server.y, ack = inbox:ack(1), depth = inbox:depth(1) }
        end
      end
      table.sort(errors)
      return errors, inbox:stats(), p:stats()
    end
    local function figures(errors, inbox, pred)
      return ("reconciles=%d p99=%.2f max=%.2f corrections=%d filled=%d held=%d missed=%d dropped=%d"):format(
        #errors, errors[math.ceil(#errors * 0.99)], errors[#errors], pred.corrections, inbox.filled, inbox.held,
        inbox.missed, inbox.dropped)
    end
    local errors, inbox, pred = simulate(0.1, 0.02, 0.05, 4, 60)
    assert(#errors > 1000, "reconciles " .. #errors)
    eq(pred.corrections, 0, "corrections")
    eq(errors[#errors], 0, "max error")
    eq(inbox.held + inbox.missed + inbox.dropped, 0, "held, missed or dropped inputs")
    assert(inbox.filled > 50, "lost packets were filled by redundancy: " .. inbox.filled)
    local summary = "redundancy 4: " .. figures(errors, inbox, pred)
    -- without redundancy the lost inputs are missed, and each one is a correction
    errors, inbox, pred = simulate(0.1, 0.02, 0.05, 1, 60)
    assert(inbox.missed > 50, "missed " .. inbox.missed)
    assert(pred.corrections > 50, "corrections " .. pred.corrections)
    return summary .. " | redundancy 1: " .. figures(errors, inbox, pred) .. " | one tick of movement: " .. SPEED * dt
  )lua");
  CHECK(out.rfind("ok: ", 0) == 0);
  MESSAGE(out);
}
