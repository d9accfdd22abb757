// scripts/nshost/input.lua: the sender's packets and acks, the receiver's
// redundancy, hold, jitter buffer and trimming, hostile packets, and time
// dilation. Each case runs in a fresh server state with the clock stepped by
// hand (the module reads no time); the Lua checks raise on a mismatch, so a
// case passes only when eval answers "ok".
#include <doctest/doctest.h>

#include <string>

#include "tests/support/roles.hpp"

using nshost::test::RoleFixture;

namespace {

const char* kPrelude = R"lua(
local input = require('nshost.input')
local fields = { dx = "i8", dy = "i8", fire = "bool", aim = "f32" }
local function eq(a, b, what) assert(a == b, ("%s: %s ~= %s"):format(what, tostring(a), tostring(b))) end
)lua";

std::string run(const std::string& code, nshost::Options options = {}) {
  return RoleFixture::in_fresh_server(kPrelude + code, std::move(options));
}

}  // namespace

TEST_CASE("input: a packet carries the last unacked inputs oldest first, ack drops them, the cap drops the oldest") {
  CHECK(run(R"lua(
    local s = input.sender{ fields = fields, redundancy = 3, max_unacked = 5 }
    eq(s:packet(), nil, "nothing pushed, nothing to send")
    for i = 1, 4 do
      local seq, kept = s:push({ dx = i, dy = -i, fire = i % 2 == 0, aim = 0.1 })
      eq(seq, i, "seq") eq(kept.dx, i, "the kept cmd")
    end
    local p = s:packet()
    local first, count, pos = string.unpack("<I4B", p)
    eq(first, 2, "first seq") eq(count, 3, "count")
    -- records in sorted field order: aim f32, dx i8, dy i8, fire u8
    eq(#p, 5 + 3 * 7, "size")
    local aim, dx, dy, fire = string.unpack("<fi1i1B", p, pos)
    eq(dx, 2, "dx") eq(dy, -2, "dy") eq(fire, 1, "fire") eq(aim, string.unpack("<f", string.pack("<f", 0.1)), "aim")
    -- the kept cmd is what the server decodes: f32 rounding included
    local un = s:unacked()
    eq(#un, 4, "unacked") eq(un[1].seq, 1, "oldest") eq(un[4].cmd.dx, 4, "cmd kept")
    eq(un[1].cmd.aim, aim, "aim rounded like the wire") assert(un[1].cmd.aim ~= 0.1)
    eq(s:ack(2), 2, "acked") eq(s:ack(1), 0, "an old ack drops nothing")
    un = s:unacked()
    eq(#un, 2, "left") eq(un[1].seq, 3, "after ack")
    for _ = 1, 6 do s:push({}) end            -- 8 unacked, cap 5
    local st = s:stats()
    eq(st.unacked, 5, "capped") eq(st.dropped, 3, "dropped") eq(st.sent, 10, "sent") eq(st.acked, 2, "acked")
    eq(s:unacked()[1].seq, 6, "the oldest went first")
    eq(s:unacked()[5].cmd.fire, false, "missing bool is false") eq(s:unacked()[5].cmd.dx, 0, "missing int is 0")
  )lua") == "ok");
}

TEST_CASE("input: a lost packet is filled from the next packet's redundant copy") {
  CHECK(run(R"lua(
    local s = input.sender{ fields = fields, redundancy = 4 }
    local r = input.receiver{ fields = fields, delay_ticks = 0 }
    local function tick(deliver)
      local seq = s:push({ dx = s:stats().sent + 1 })
      local p = s:packet()
      if deliver then assert(r:receive(7, p)) end
      local cmd, got, fresh = r:take(7)
      s:ack(r:ack(7))
      return seq, cmd, got, fresh
    end
    local _, cmd, got, fresh = tick(true)
    eq(got, 1, "seq 1") eq(cmd.dx, 1, "cmd 1") eq(fresh, true, "fresh")
    _, cmd, got, fresh = tick(false)           -- seq 2's packet is lost
    eq(got, 1, "held") eq(fresh, false, "not fresh") eq(cmd.dx, 1, "the last input again")
    -- seq 3's packet carries 2 and 3 (2 unacked): 2 is filled in, applied next
    _, cmd, got, fresh = tick(true)
    eq(got, 2, "seq 2 from redundancy") eq(cmd.dx, 2, "its cmd") eq(fresh, true, "fresh")
    cmd, got = r:take(7)
    eq(got, 3, "then seq 3") eq(cmd.dx, 3, "cmd 3")
    local st = r:stats(7)
    eq(st.filled, 1, "filled") eq(st.missed, 0, "missed") eq(st.applied, 3, "applied") eq(st.held, 1, "held")
    eq(st.received, 2, "packets") eq(st.late, 0, "late")
    -- the copy of 2 and 3 in the next packet changes nothing
    tick(true)
    st = r:stats(7)
    eq(st.applied, 4, "only seq 4 new") eq(st.filled, 1, "still 1")
    eq(s:stats().unacked, 0, "all acked")
  )lua") == "ok");
}

TEST_CASE("input: the server holds the last input until superseded, and delay_ticks buffers, waits, skips and trims") {
  CHECK(run(R"lua(
    local s = input.sender{ fields = fields, redundancy = 1 }
    local r = input.receiver{ fields = fields, delay_ticks = 2 }
    eq(r:take("never"), nil, "a key never seen") eq(r:ack("never"), 0, "its ack") eq(r:depth("never"), 0, "depth")
    local packets = {}
    for i = 1, 12 do s:push({ dx = i }) packets[i] = s:packet() end
    r:receive("a", packets[1])
    eq(r:take("a"), nil, "one waiting: the jitter buffer is not full")
    r:receive("a", packets[2])
    local cmd, seq, fresh = r:take("a")
    eq(seq, 1, "starts once 2 wait") eq(cmd.dx, 1, "dx") eq(fresh, true, "fresh") eq(r:depth("a"), 1, "depth")
    cmd, seq = r:take("a") eq(seq, 2, "seq 2")
    cmd, seq, fresh = r:take("a")
    eq(seq, 2, "held") eq(fresh, false, "held is not fresh") eq(cmd.dx, 2, "held cmd")
    eq(r:ack("a"), 2, "ack is the last applied")
    -- seq 3 is lost: with 4 and 5 waiting, take waits 2 ticks, then skips it
    r:receive("a", packets[4]) r:receive("a", packets[5])
    cmd, seq, fresh = r:take("a") eq(seq, 2, "wait 1") eq(fresh, false, "holding")
    cmd, seq, fresh = r:take("a") eq(seq, 2, "wait 2") eq(fresh, false, "holding")
    cmd, seq, fresh = r:take("a") eq(seq, 4, "skipped 3") eq(fresh, true, "fresh") eq(cmd.dx, 4, "cmd 4")
    r:receive("a", packets[3])              -- its first copy, after its tick
    local st = r:stats("a")
    eq(st.missed, 1, "missed") eq(st.late, 1, "late") eq(st.held, 3, "held")
    r:receive("a", packets[3])              -- a duplicate: not late twice
    eq(r:stats("a").late, 1, "late once")
    -- the client runs fast: 7 would wait after the take, > 2 * max(2, d) = 4: trimmed to leave d
    for i = 6, 12 do r:receive("a", packets[i]) end
    eq(r:depth("a"), 8, "5..12 waiting")
    cmd, seq = r:take("a")
    eq(seq, 10, "trimmed to the newest d + 1") eq(r:depth("a"), 2, "d left")
    eq(r:stats("a").dropped, 5, "5..9 dropped")
    -- d = 0: up to 2 * max(2, d) = 4 waiting after the take are kept (twice
    -- the dilation's default target), 5 are trimmed to d = 0
    local r0 = input.receiver{ fields = fields, delay_ticks = 0 }
    for i = 1, 5 do r0:receive("z", packets[i]) end
    cmd, seq = r0:take("z") eq(seq, 1, "no trim") eq(r0:depth("z"), 4, "4 wait")
    for i = 6, 7 do r0:receive("z", packets[i]) end
    cmd, seq = r0:take("z") eq(seq, 7, "trimmed") eq(r0:depth("z"), 0, "none wait")
    r:forget("a")
    eq(r:take("a"), nil, "forgotten")
    eq(r:stats().applied, 4, "totals outlive the key")
  )lua") == "ok");
}

TEST_CASE("input: malformed and hostile packets return nil, reason and change nothing") {
  CHECK(run(R"lua(
    local s = input.sender{ fields = fields }
    local r = input.receiver{ fields = fields, max_jump = 100 }
    s:push({ dx = 1 })
    assert(r:receive(1, s:packet()))
    local good = s:packet()
    local record = good:sub(6)              -- one 7-byte record
    local function snapshot()
      local st = r:stats(1)
      return table.concat({ r:depth(1), r:ack(1), st.received, st.applied, st.late, st.missed, st.filled }, ",")
    end
    local before = snapshot()
    local cases = {
      { "", "truncated" },
      { good:sub(1, 4), "truncated" },
      { good:sub(1, -2), "truncated" },
      { good .. "x", "trailing bytes" },
      { string.pack("<I4B", 2, 0), "empty" },
      { string.pack("<I4B", 2, 33) .. record:rep(33), "count over the cap" },
      { string.pack("<I4B", 0, 1) .. record, "seq out of range" },
      { string.pack("<I4B", 0xFFFFFFFF, 2) .. record:rep(2), "seq out of range" },
      { string.pack("<I4B", 200, 1) .. record, "seq jump" },
      { string.pack("<I4B", 2, 1) .. string.pack("<fi1i1B", 0, 1, 1, 2), "bad field bytes" },
      { string.pack("<I4B", 2, 1) .. string.pack("<fi1i1B", 0 / 0, 1, 1, 0), "bad field bytes" },
      { string.pack("<I4B", 2, 2) .. record .. string.pack("<fi1i1B", 1 / 0, 1, 1, 0), "bad field bytes" },
    }
    for i, c in ipairs(cases) do
      local ok, why = r:receive(1, c[1])
      eq(ok, nil, "case " .. i) eq(why, c[2], "reason of case " .. i)
      eq(snapshot(), before, "case " .. i .. " changed the state")
    end
    eq(r:stats(1).malformed, #cases, "counted")
    -- a key never seen: counted in the totals, no state made
    eq(r:receive(2, "junk"), nil, "junk from a new key")
    eq(r:take(2), nil, "no state for it") eq(r:stats().malformed, #cases + 1, "totals")
    -- what still works: the good packet, then a jump inside max_jump
    local cmd, seq = r:take(1)
    eq(seq, 1, "seq 1 applied") eq(cmd.dx, 1, "dx")
    assert(r:receive(1, string.pack("<I4B", 90, 1) .. string.pack("<fi1i1B", 0, 5, 0, 1)))
    cmd, seq = r:take(1)
    eq(seq, 90, "skipped ahead") eq(cmd.fire, true, "fire") eq(r:stats(1).missed, 88, "2..89 missed")
    -- a flood never grows the buffer past max_buffer
    local r2 = input.receiver{ fields = fields, max_buffer = 8, delay_ticks = 0 }
    for i = 1, 50 do assert(r2:receive("f", string.pack("<I4B", i * 3, 1) .. record)) end
    assert(r2:depth("f") <= 8, r2:depth("f"))
    -- misuse raises, naming the function
    local ok, err = pcall(r.receive, r, {}, "x")
    assert(not ok and err:find("receiver:receive: keys are strings or integers", 1, true), err)
    ok, err = pcall(s.push, s, { dx = 300 })
    assert(not ok and err:find("sender:push: dx must be an integer in -128..127", 1, true), err)
    ok, err = pcall(input.sender, { fields = { a = "i64" } })
    assert(not ok and err:find("unknown type i64", 1, true), err)
    ok, err = pcall(input.receiver, { fields = fields, delay_ticks = 4, max_buffer = 9 })
    assert(not ok and err:find("max_buffer must be above 2 * max(2, delay_ticks) + 1", 1, true), err)
    ok, err = pcall(input.sender, { fields = fields, redundancy = 33 })
    assert(not ok and err:find("redundancy must be an integer in 1..32", 1, true), err)
  )lua") == "ok");
}

TEST_CASE("input: a hostile peer's packets never grow the receiver's or the sender's memory past their caps") {
  CHECK(run(R"lua(
    local r = input.receiver{ fields = fields, delay_ticks = 2, max_buffer = 16 }
    local record = string.pack("<fi1i1B", 0, 1, 1, 0)
    local function flood(key, packets)
      local seq = 1
      for i = 1, packets do
        -- each packet reaches as far ahead as max_jump allows, 32 records, some duplicates
        seq = seq + (i % 3 == 0 and 0 or 4096 - 32)
        r:receive(key, string.pack("<I4B", seq, 32) .. record:rep(32))
        if i % 2 == 0 then r:take(key) end
      end
    end
    flood("warmup", 200)
    r:forget("warmup")
    collectgarbage() collectgarbage()
    local before = collectgarbage("count")
    flood("h", 3000)
    assert(r:depth("h") <= 16, "depth " .. r:depth("h"))
    collectgarbage() collectgarbage()
    local grown = collectgarbage("count") - before
    assert(grown < 64, ("the receiver grew by %.1f KB"):format(grown))
    local st = r:stats("h")
    assert(st.missed > 1000000, "the skipped seqs are counted, not stored: " .. st.missed)
    -- a sender whose acks never come keeps max_unacked inputs
    local s = input.sender{ fields = fields, max_unacked = 64 }
    for _ = 1, 10000 do s:push({ dx = 1 }) end
    eq(#s:unacked(), 64, "unacked capped") eq(s:stats().dropped, 10000 - 64, "dropped counted")
  )lua") == "ok");
}

TEST_CASE("input: dilation's factor has the sign of the depth error and the bound max, and steps follow dt * rate * (1 + factor)") {
  CHECK(run(R"lua(
    local d = input.dilation{ tick_rate = 30, target_depth = 2, max = 0.05, gain = 0.05 }
    eq(d:factor(), 0, "no observation yet")
    for _ = 1, 60 do d:observe(0) end
    eq(d:factor(), 0.05, "short buffer: run fast, bounded by max")
    local n = 0
    for _ = 1, 3000 do n = n + d:steps(1 / 60) end
    -- 50 s at 30 steps/s, 5 % fast: 1575 steps
    assert(math.abs(n - 1575) <= 1, n)
    for _ = 1, 60 do d:observe(12) end
    eq(d:factor(), -0.05, "long buffer: run slow, bounded by -max")
    n = 0
    for _ = 1, 3000 do n = n + d:steps(1 / 60) end
    assert(math.abs(n - 1425) <= 1, n)
    for _ = 1, 200 do d:observe(2.5) end
    assert(math.abs(d:factor() - (-0.025)) < 1e-6, "proportional: " .. d:factor())
    for _ = 1, 200 do d:observe(2) end
    assert(math.abs(d:factor()) < 1e-9, "at the target: " .. d:factor())
    eq(d:steps(1 / 30), 1, "one tick of time, one step")
    eq(d:steps(0), 0, "no time, no step")
    eq(d:steps(1), 3, "a stall runs at most 3 steps")
    eq(d:stats().dropped, 27, "the rest of the backlog is dropped")
    local ok, err = pcall(d.steps, d, -1)
    assert(not ok and err:find("dilation:steps: dt must be", 1, true), err)
  )lua") == "ok");
}

TEST_CASE("input: dilation keeps the server's buffer near its target depth when the client's clock runs slow") {
  // A closed loop with the clock stepped by hand: the client renders at 60
  // frames/s but its clock reads 3 % slow, so at the nominal rate it falls
  // behind and the server runs dry; dilation must speed it up.
  CHECK(run(R"lua(
    local function simulate(dilate)
      local s = input.sender{ fields = fields, redundancy = 4 }
      local r = input.receiver{ fields = fields, delay_ticks = 2 }
      local d = input.dilation{ tick_rate = 30, target_depth = 2, max = dilate and 0.05 or 0 }
      local depths, held = {}, 0
      for frame = 1, 60 * 40 do
        for _ = 1, d:steps(0.97 / 60) do
          s:push({ dx = 1 })
          assert(r:receive("c", s:packet()))
        end
        if frame % 2 == 0 then                  -- the server ticks at 30 Hz
          local _, _, fresh = r:take("c")
          if fresh == false then held = held + 1 end
          s:ack(r:ack("c"))
          if frame > 60 * 20 then depths[#depths + 1] = r:depth("c") end
          d:observe(r:depth("c"))
        end
      end
      local sum = 0
      for _, v in ipairs(depths) do sum = sum + v end
      return sum / #depths, held, d:factor()
    end
    local mean, held, factor = simulate(true)
    assert(mean > 1 and mean < 2.5, "dilated: mean depth " .. mean)
    assert(held < 10, "dilated: held " .. held)
    assert(factor > 0.02 and factor <= 0.05, "runs fast to make up for the slow clock: " .. factor)
    local mean0, held0 = simulate(false)
    assert(mean0 < 0.5, "undilated: the buffer runs dry: " .. mean0)
    assert(held0 > 25, "undilated: the server holds " .. held0)
  )lua") == "ok");
}

TEST_CASE("input: works in a sandboxed state") {
  nshost::Options options;
  options.sandbox = true;
  CHECK(run(R"lua(
    assert(sys.sandboxed())
    local s = input.sender{ fields = fields }
    local r = input.receiver{ fields = fields }
    s:push({ dx = -3, fire = true })
    assert(r:receive(1, s:packet()))
    local cmd, seq = r:take(1)
    eq(seq, 1, "seq") eq(cmd.dx, -3, "dx") eq(cmd.fire, true, "fire")
  )lua",
            options) == "ok");
}
