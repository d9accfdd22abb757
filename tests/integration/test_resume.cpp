// Resume after a dropped link (seed 002): real nshost processes on loopback,
// links cut by stopping a process (SIGSTOP/SIGCONT) or by a raw ENet peer that
// goes silent. Short --resume-grace, --link-timeout and ladders keep it quick.
#include <doctest/doctest.h>
#include <signal.h>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/roles/session.hpp"
#include "runtime/transport/wire.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_peer.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

const std::vector<std::string> kFastClient = {"--link-timeout=500", "--reconnect=100,2,400,8,20000"};

// Joins presenting `token`; REQUIREs a welcome and returns it.
wire::Welcome welcomed_with(RawPeer& peer, const std::string& token) {
  wire::Hello hello;
  hello.session_token = token;
  auto answer = peer.join(hello);
  REQUIRE(answer);
  REQUIRE(answer->welcomed);
  return answer->welcome;
}

}  // namespace

TEST_CASE("resume: a stopped client resumes within the window in the same slot with its server state") {
  Server server = start_server(test_script("resume.lua"), {"--resume-grace=10000", "--link-timeout=500"});
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("resume.lua"), server.port, kFastClient);
  REQUIRE(client->wait_stdout("got count=3"));
  REQUIRE(server.process->wait_stdout("connect slot=0"));

  client->send_signal(SIGSTOP);
  auto lost = server.process->wait_stdout("lost slot=0", 5000);
  client->send_signal(SIGCONT);
  REQUIRE(lost);
  CHECK(*lost == "lost slot=0 connected=false send=true");  // queued for the replay

  CHECK(client->wait_stdout("client lost", 5000));
  CHECK(client->wait_stdout("client resumed", 5000));
  // The server-side counter survived: the fourth "inc" answers 4.
  CHECK(client->wait_stdout("got count=4", 5000));
  auto resumed = server.process->wait_stdout("resumed slot=0");
  REQUIRE(resumed);
  CHECK(*resumed == "resumed slot=0 count=3 connected=true");
  CHECK(server.process->wait_stderr("resumed slot 0"));
  CHECK_FALSE(server.process->wait_stdout("disconnect slot=0", 200));

  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  CHECK(client->wait_stdout("disconnected: server_left"));
  CHECK(client->wait_exit() == 0);
}

TEST_CASE("resume: after the window the server says timeout and the client rejoins fresh") {
  Server server = start_server(test_script("resume.lua"), {"--resume-grace=300", "--link-timeout=500"});
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("resume.lua"), server.port, kFastClient);
  REQUIRE(client->wait_stdout("got count=3"));

  client->send_signal(SIGSTOP);
  auto lost = server.process->wait_stdout("lost slot=0", 5000);
  auto gone = server.process->wait_stdout("disconnect slot=0 reason=timeout", 5000);
  client->send_signal(SIGCONT);
  CHECK(lost);
  CHECK(gone);

  CHECK(client->wait_stdout("client lost", 5000));
  CHECK(client->wait_stdout("joined handoff=\"\"", 5000));
  CHECK(client->wait_stdout("got count=1", 5000));  // fresh state on the server
  CHECK(client->wait_stderr("rejoined fresh"));
  CHECK(server.process->wait_stdout("connect slot=0"));
  CHECK_FALSE(client->stdout_text().find("client resumed") != std::string::npos);
}

TEST_CASE("resume: when the server is gone the ladder ends in disconnect(\"lost\")") {
  Server server = start_server(test_script("resume.lua"), {"--link-timeout=500"});
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("resume.lua"), server.port,
                             {"--link-timeout=300", "--reconnect=50,2,200,3,10000"});
  REQUIRE(client->wait_stdout("got count=3"));
  server.process->send_signal(SIGKILL);
  CHECK(server.process->wait_exit() == 128 + SIGKILL);
  CHECK(client->wait_stdout("client lost", 5000));
  CHECK(client->wait_stdout("disconnected: lost", 10000));
  CHECK(client->wait_stderr("gave up reconnecting after 3 attempt(s)"));
  CHECK(client->wait_exit() == 0);
}

TEST_CASE("resume: a clean leave and a kick skip the grace window") {
  Server server = start_server(test_script("resume.lua"), {"--resume-grace=10000", "--link-timeout=500"});
  REQUIRE(server.port > 0);
  {
    auto leaver = start_client(test_script("resume.lua"), server.port, kFastClient, {"CLIENT_QUIT_AFTER=3"});
    CHECK(leaver->wait_exit() == 0);
    CHECK(server.process->wait_stdout("disconnect slot=0 reason=left"));
  }
  {
    auto kicked = start_client(test_script("resume.lua"), server.port, kFastClient, {"CLIENT_KICKME=1"});
    CHECK(kicked->wait_stdout("disconnected: kicked: asked for it"));
    CHECK(kicked->wait_exit() == 0);
    CHECK(server.process->wait_stdout("disconnect slot=0 reason=kicked"));
    CHECK(kicked->stdout_text().find("client lost") == std::string::npos);
  }
  CHECK(server.process->stdout_text().find("lost slot=") == std::string::npos);
}

TEST_CASE("resume: a token cannot take over a live slot, a forged one is not a resume, a spent one is refused") {
  Server server = start_server(test_script("resume.lua"), {"--resume-grace=10000", "--link-timeout=1500"});
  REQUIRE(server.port > 0);
  EnetLibrary enet;

  RawPeer owner(server.port);
  auto first = owner.join(wire::Hello{});
  REQUIRE(first);
  REQUIRE(first->welcomed);
  CHECK(first->welcome.slot == 0);
  CHECK_FALSE(first->welcome.resumed);
  const std::string token = first->welcome.session_token;
  REQUIRE(token.size() == wire::kSessionTokenBytes);

  // Another peer presenting the live session's token is refused.
  {
    RawPeer thief(server.port);
    wire::Hello hello;
    hello.session_token = token;
    auto answer = thief.join(hello);
    REQUIRE(answer);
    CHECK_FALSE(answer->welcomed);
    CHECK(answer->reason == "session_in_use");
  }
  CHECK(server.process->wait_stderr("session_in_use (slot 0 is still connected)"));

  // A forged token resumes nothing: the peer is admitted as a fresh join.
  {
    RawPeer forger(server.port);
    wire::Welcome welcome = welcomed_with(forger, random_session_token());
    CHECK_FALSE(welcome.resumed);
    CHECK(welcome.slot == 1);
    CHECK(server.process->wait_stdout("connect slot=1"));
  }

  // The owner's link dies; its token resumes slot 0 and is spent doing so.
  owner.cut();
  CHECK(server.process->wait_stdout("lost slot=0", 5000));
  std::string second_token;
  {
    RawPeer heir(server.port);
    wire::Welcome welcome = welcomed_with(heir, token);
    CHECK(welcome.resumed);
    CHECK(welcome.slot == 0);
    second_token = welcome.session_token;
    CHECK(second_token.size() == wire::kSessionTokenBytes);
    CHECK(second_token != token);
    CHECK(server.process->wait_stdout("resumed slot=0 count=0"));
    // Using the new link confirms it, which retires the presented token.
    CHECK(heir.send_data_acked("inc"));
    heir.cut();
  }
  CHECK(server.process->wait_stdout("lost slot=0", 5000));
  // Replaying the spent token is not a resume, even with the slot in its window.
  {
    RawPeer replayer(server.port);
    wire::Welcome welcome = welcomed_with(replayer, token);
    CHECK_FALSE(welcome.resumed);
    CHECK(welcome.slot != 0);
  }
  // The current token still resumes it, and a welcome lost with the link
  // does not strand the client: until the new link is used, the token it
  // presented stays good.
  std::string third_token;
  {
    RawPeer heir(server.port);
    wire::Welcome welcome = welcomed_with(heir, second_token);
    CHECK(welcome.resumed);
    CHECK(welcome.slot == 0);
    third_token = welcome.session_token;
    heir.cut();
  }
  CHECK(server.process->wait_stdout("lost slot=0", 5000));
  {
    RawPeer heir(server.port);
    wire::Welcome welcome = welcomed_with(heir, second_token);
    CHECK(welcome.resumed);
    CHECK(welcome.slot == 0);
    CHECK(welcome.session_token != third_token);
  }
}

TEST_CASE("resume: the client that re-dials from the same socket replaces its own stale link") {
  Server server = start_server(test_script("resume.lua"), {"--resume-grace=10000", "--link-timeout=3000"});
  REQUIRE(server.port > 0);
  EnetLibrary enet;
  RawPeer client(server.port);
  auto first = client.join(wire::Hello{});
  REQUIRE(first);
  REQUIRE(first->welcomed);
  // The client gives up on its link; the server has not noticed yet.
  client.cut();
  wire::Hello hello;
  hello.session_token = first->welcome.session_token;
  auto answer = client.join_again(hello);
  REQUIRE(answer);
  REQUIRE(answer->welcomed);
  CHECK(answer->welcome.resumed);
  CHECK(answer->welcome.slot == 0);
  CHECK(server.process->wait_stdout("lost slot=0"));
  CHECK(server.process->wait_stdout("resumed slot=0 count=0"));
  CHECK(server.process->wait_stderr("replaced its stale link"));
}
