#include "tests/support/redis_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace nshost::test {
namespace {

constexpr const char* kRedisServer = "/usr/bin/redis-server";
constexpr const char* kRedisCli = "/usr/bin/redis-cli";

// A TCP port free on 127.0.0.1 right now (the kernel's pick for port 0).
int free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

}  // namespace

bool RedisServer::available() { return access(kRedisServer, X_OK) == 0 && access(kRedisCli, X_OK) == 0; }

RedisServer::~RedisServer() { stop(); }

bool RedisServer::start(std::string& error, int timeout_ms) {
  if (process_) return true;
  if (!available()) {
    error = "redis-server is not installed (apt-get install redis-server)";
    return false;
  }
  // A port picked free can be taken before redis binds it: a first start
  // tries a few; a restart must get its old port back.
  bool restart = port_ != 0;
  for (int attempt = 0; attempt < (restart ? 1 : 5); ++attempt) {
    if (!restart) port_ = free_tcp_port();
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        kRedisServer, "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--protected-mode", "no", "--daemonize", "no", "--loglevel", "notice"});
    if (process_->wait_stdout("Ready to accept connections", timeout_ms)) return true;
    error = "redis-server on port " + std::to_string(port_) + " did not come up: " + process_->stdout_text();
    stop();
  }
  return false;
}

void RedisServer::stop(int timeout_ms) {
  if (!process_) return;
  process_->send_signal(SIGTERM);
  if (!process_->wait_exit(timeout_ms)) process_->send_signal(SIGKILL);
  process_->wait_exit(timeout_ms);
  process_.reset();
}

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::string command = std::string(kRedisCli) + " -p " + std::to_string(port_);
  for (const auto& a : args) command += " " + shell_quote(a);
  command += " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return "";
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace nshost::test
