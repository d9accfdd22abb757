// A client started from a URL alone runs the server's script in the sandbox:
// its net.* is refused without --allow-net, reaches exactly the listed port
// with it, and never listens. Real nshost processes on loopback.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

#if NSHOST_WITH_TCP
namespace {

// A loopback listener whose port the kernel picks; closed with the object.
struct LoopbackPort {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = 0;
  LoopbackPort() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd, 16) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port = ntohs(addr.sin_port);
  }
  ~LoopbackPort() { close(fd); }
};

std::unique_ptr<ChildProcess> fetched_client(int server_port, const TempDir& cache, std::vector<std::string> extra) {
  std::vector<std::string> args{nshost_binary(), "--role=client", "--headless", "--cache-dir=" + cache.path};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("nshost://127.0.0.1:" + std::to_string(server_port));
  return std::make_unique<ChildProcess>(args);
}

}  // namespace

TEST_CASE("fetched code: no net without --allow-net, exactly the listed port with it, never a listener") {
  LoopbackPort allowed, other;
  REQUIRE(allowed.port > 0);
  REQUIRE(other.port > 0);
  std::string ports = std::to_string(allowed.port) + "," + std::to_string(other.port);
  Server server = start_server(net_dir() + "/fetched/game.lua", {}, {"NET_PORTS=" + ports});
  REQUIRE(server.port > 0);

  SUBCASE("without --allow-net") {
    TempDir cache;
    auto client = fetched_client(server.port, cache, {});
    REQUIRE_MESSAGE(client->wait_stdout("fetched tried"), (client->stdout_text() + client->stderr_text()));
    std::string out = client->stdout_text();
    CHECK(out.find("fetched allowed h=nil code=EACCES err=net is not available to fetched scripts (sandbox;") !=
          std::string::npos);
    CHECK(out.find("fetched other h=nil code=EACCES err=net is not available") != std::string::npos);
    CHECK(out.find("fetched listen h=nil code=EACCES err=listening sockets are not available") != std::string::npos);
    client->send_signal(SIGTERM);
    CHECK(client->wait_exit() == 0);
  }
  SUBCASE("with --allow-net=127.0.0.1:PORT") {
    TempDir cache;
    auto client = fetched_client(server.port, cache, {"--allow-net=127.0.0.1:" + std::to_string(allowed.port)});
    REQUIRE_MESSAGE(client->wait_stdout("fetched event allowed connected"),
                    (client->stdout_text() + client->stderr_text()));
    std::string out = client->stdout_text();
    CHECK(out.find("fetched other h=nil code=EACCES err=127.0.0.1:" + std::to_string(other.port) +
                   " is not in the player's --allow-net list") != std::string::npos);
    CHECK(out.find("fetched listen h=nil code=EACCES err=listening sockets") != std::string::npos);
    client->send_signal(SIGTERM);
    CHECK(client->wait_exit() == 0);
  }
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}

TEST_CASE("--allow-net: entries are host:port or [ipv6]:port, anything else is a usage error") {
  auto run = [](const std::string& flag) {
    ChildProcess p({nshost_binary(), "--role=client", flag, "nshost://127.0.0.1:1"});
    p.wait_exit(5000);
    return p.stderr_text();
  };
  CHECK(run("--allow-net=example.com").find("--allow-net: 'example.com' is not host:port") != std::string::npos);
  CHECK(run("--allow-net=::1:80").find("is not host:port or [ipv6]:port") != std::string::npos);
  CHECK(run("--allow-net=a.example:0").find("with a port 1..65535") != std::string::npos);
  CHECK(run("--allow-net=").find("--allow-net: expected host:port") != std::string::npos);
}
#endif
