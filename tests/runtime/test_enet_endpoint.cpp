// EnetEndpoint's service: one ENet pass per wakeup, then only the events it
// queued; datagrams beyond one pass (ENet reads at most 256, the tap's
// receive batch holds up to 64) and those that arrive during a --coalesce
// gap are all still delivered, in order. Real server and client roles on a
// private loop.
#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

namespace {

const char* kServer = R"(
  got, bad = 0, 0
  function server.receive(c, data, channel)
    got = got + 1
    if tonumber(data:match("^%d+")) ~= got then bad = bad + 1 end
  end
)";

// 300 reliable messages of ~1 KB queued at once, one per datagram: ENet
// lets a window of them go per round trip, which reach the server together.
const char* kClient = R"(
  function client.connect() for i = 1, 300 do send(i .. string.rep("x", 1000)) end end
)";

void burst_arrives_whole(uint32_t coalesce_ms) {
  RoleFixture f;
  Options o;
  o.coalesce_ms = coalesce_ms;
  ServerRole& server = f.start_server(kServer, o);
  f.start_client(kClient);
  lua_State* S = server.script()->state();
  REQUIRE(f.step_until([&] { return RoleFixture::eval(S, "return got") == "ok: 300"; }));
  CHECK(RoleFixture::eval(S, "return bad") == "ok: 0");
  // Read in batches: fewer recvmmsg calls than datagrams.
  const SocketTap::Stats& st = server.endpoint()->tap().stats();
  CHECK(st.datagrams_in >= 300);
  CHECK(st.receive_syscalls * 4 < st.datagrams_in);
}

}  // namespace

TEST_CASE("endpoint: a burst of 300 messages arrives whole and in order, read on every wakeup") {
  burst_arrives_whole(0);
}

TEST_CASE("endpoint: a burst of 300 messages arrives whole and in order with a 20 ms coalescing gap") {
  burst_arrives_whole(20);
}
