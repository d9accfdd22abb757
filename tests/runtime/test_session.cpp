// Resume bookkeeping, the session token fields of the wire codec, and the
// reliability flags.
#include <doctest/doctest.h>

#include "runtime/config/options.hpp"
#include "tests/support/cli.hpp"
#include "runtime/roles/session.hpp"
#include "runtime/transport/wire.hpp"

using namespace nshost;

using nshost::test::parse;

TEST_CASE("session table: tokens name one slot, are re-issued on resume and revoked on leave") {
  SessionTable sessions(4);
  std::string a = sessions.issue(0), b = sessions.issue(1);
  CHECK(a.size() == wire::kSessionTokenBytes);
  CHECK(a != b);
  CHECK(sessions.find(a) == 0u);
  CHECK(sessions.find(b) == 1u);
  CHECK_FALSE(sessions.find(std::string(16, '\0')));
  CHECK_FALSE(sessions.find("short"));

  sessions.mark_lost(0, 1000);
  CHECK(sessions.lost(0));
  CHECK(sessions.expired(999).empty());
  REQUIRE(sessions.expired(1000).size() == 1);
  CHECK(sessions.expired(1000)[0] == std::pair<uint32_t, std::string>{0, "timeout"});

  // A resume re-issues: the old token stays good until the new link is confirmed.
  std::string a2 = sessions.reissue(0);
  CHECK_FALSE(sessions.lost(0));
  CHECK(sessions.find(a2) == 0u);
  CHECK(sessions.find(a) == 0u);
  sessions.confirm(0);
  CHECK_FALSE(sessions.find(a));
  CHECK(sessions.find(a2) == 0u);

  sessions.mark_lost(1, 5000);
  sessions.expire_now(1, "kicked");
  REQUIRE(sessions.expired(0).size() == 1);
  CHECK(sessions.expired(0)[0].second == "kicked");
  sessions.revoke(1);
  CHECK_FALSE(sessions.find(b));
  CHECK_FALSE(sessions.lost(1));
  CHECK(sessions.lost_count() == 0);
}

TEST_CASE("session table: a joiner finding no free slot ends the oldest held session of the address holding most") {
  SessionTable sessions(6);
  for (uint32_t slot = 0; slot < 6; ++slot) sessions.issue(slot);
  CHECK_FALSE(sessions.eviction_candidate());  // nothing held
  const uint32_t a = 0x0100007f, b = 0x0200007f;
  sessions.mark_lost(0, 1'000'000, b, 10);  // the oldest overall, but b holds one
  sessions.mark_lost(1, 1'000'000, a, 30);
  sessions.mark_lost(2, 1'000'000, a, 20);
  sessions.mark_lost(3, 1'000'000, a, 40);
  CHECK(sessions.eviction_candidate() == 2u);  // a holds three; its oldest
  sessions.revoke(2);
  sessions.mark_lost(4, 1'000'000, b, 50);
  // a and b hold two each: the older of their oldest.
  CHECK(sessions.eviction_candidate() == 0u);
  // A session already being ended is not offered again.
  sessions.expire_now(0, "kicked");
  CHECK(sessions.eviction_candidate() == 1u);
}

TEST_CASE("wire: session token and resumed fields round-trip and are bounds-checked") {
  wire::Hello hello;
  hello.session_token = random_session_token();
  wire::Hello h2;
  std::string error;
  REQUIRE(wire::decode_hello(wire::encode_hello(hello), h2, error));
  CHECK(h2.session_token == hello.session_token);
  CHECK(h2.handoff.empty());

  wire::Welcome welcome;
  welcome.slot = 7;
  welcome.session_token = random_session_token();
  welcome.resumed = true;
  wire::Welcome w2;
  REQUIRE(wire::decode_welcome(wire::encode_welcome(welcome), w2, error));
  CHECK(w2.slot == 7);
  CHECK(w2.session_token == welcome.session_token);
  CHECK(w2.resumed);
  welcome.resumed = false;
  REQUIRE(wire::decode_welcome(wire::encode_welcome(welcome), w2, error));
  CHECK_FALSE(w2.resumed);

  std::string bad = wire::encode_hello(wire::Hello{});
  bad += std::string("\x08\x00\x00\x00\x03" "abc", 8);
  CHECK_FALSE(wire::decode_hello(bad, h2, error));
  CHECK(error == "session token of 3 bytes (expected 16)");
  std::string twice = wire::encode_hello(hello);
  twice += twice.substr(7);
  CHECK_FALSE(wire::decode_hello(twice, h2, error));
  CHECK(error == "duplicate session token field");
  std::string bad_flag = wire::encode_welcome(wire::Welcome{}) + std::string("\x09\x00\x00\x00\x01\x02", 6);
  CHECK_FALSE(wire::decode_welcome(bad_flag, w2, error));
  CHECK(error == "malformed resumed field");
}

TEST_CASE("options: reliability flags, their defaults and the reconnect ladder") {
  auto p = parse({"--role=client", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  const Options& d = p.options;
  CHECK(d.resume_grace_ms == 30000);
  CHECK(d.reconnect.base_ms == 200);
  CHECK(d.reconnect.factor == 2.0);
  CHECK(d.reconnect.cap_ms == 5000);
  CHECK(d.reconnect.attempts == 8);
  CHECK(d.reconnect.total_ms == 60000);
  CHECK(d.limits.max_message_rate == 1000);
  CHECK(d.limits.max_pending_handshakes == 32);
  CHECK(d.limits.max_pending_per_address == 4);
  CHECK(d.limits.handshake_timeout_ms == 5000);
  CHECK(d.limits.max_handoff_bytes == 65536);
  CHECK(d.limits.link_timeout_ms == 5000);
  CHECK(d.memory_limit_bytes == 256u << 20);
  CHECK(d.instruction_budget == 0);
  CHECK(d.handler_timeout_ms == 1000);
  CHECK_FALSE(d.netsim.enabled);
  // 200, 400, 800, 1600, 3200, then the 5000 cap.
  for (auto [k, ms] : {std::pair{0u, 200u}, {1u, 400u}, {4u, 3200u}, {5u, 5000u}, {7u, 5000u}})
    CHECK(d.reconnect.delay_ms(k) == ms);

  p = parse({"--role=server", "--netsim=10,2,1%,0,0.5,3", "--resume-grace=0", "--reconnect=50,1.5,400,3,2000",
             "--link-timeout=300", "--max-message-rate=0", "--max-pending-handshakes=2",
             "--max-pending-per-address=1", "--handshake-timeout=100", "--max-handoff-size=0",
             "--memory-limit=0", "--instruction-budget=10000", "--handler-timeout=0", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  const Options& o = p.options;
  CHECK(o.netsim.enabled);
  CHECK(o.netsim.loss == doctest::Approx(0.01));
  CHECK(o.netsim.seed == 3);
  CHECK(o.resume_grace_ms == 0);
  CHECK(o.reconnect.factor == 1.5);
  CHECK(o.reconnect.attempts == 3);
  CHECK(o.limits.link_timeout_ms == 300);
  CHECK(o.limits.max_message_rate == 0);
  CHECK(o.limits.max_pending_per_address == 1);
  CHECK(o.limits.max_handoff_bytes == 0);
  CHECK(o.memory_limit_bytes == 0);
  CHECK(o.instruction_budget == 10000);
  CHECK(o.handler_timeout_ms == 0);
  CHECK(parse({"--role=client", "--reconnect=off", "g.lua"}).options.reconnect.attempts == 0);

  for (auto [flag, message] : std::initializer_list<std::pair<const char*, const char*>>{
           {"--netsim=1,2", "--netsim: expected latency_ms,jitter_ms,loss,dup,reorder[,seed]"},
           {"--reconnect=1,2,3", "--reconnect: expected BASE_MS,FACTOR,CAP_MS,ATTEMPTS,TOTAL_MS (e.g. 200,2,5000,8,60000) or off"},
           {"--max-handoff-size=70000", "--max-handoff-size: expected 0..65536 (bytes)"}}) {
    auto bad = parse({"--role=server", flag, "g.lua"});
    CHECK(bad.action == ParsedArgs::Action::error);
    CHECK(bad.error == message);
  }
}
