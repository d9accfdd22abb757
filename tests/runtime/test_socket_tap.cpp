// The transport tap's send batching: datagrams ENet sends while a
// SocketTap::Batch is open reach the kernel together, every one of them, in
// order, and a datagram the kernel refuses is counted without losing the rest.
// Real UDP sockets on loopback; the sends go through the interposed
// enet_socket_send, the way libenet makes them.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/socket_tap.hpp"

using namespace nshost;

namespace {

struct Socket {
  ENetSocket fd;
  explicit Socket(bool nonblocking) : fd(enet_socket_create(ENET_SOCKET_TYPE_DATAGRAM)) {
    REQUIRE(fd != ENET_SOCKET_NULL);
    ENetAddress any{};
    enet_address_set_host_ip(&any, "127.0.0.1");
    REQUIRE(enet_socket_bind(fd, &any) == 0);
    if (nonblocking) enet_socket_set_option(fd, ENET_SOCKOPT_NONBLOCK, 1);
    enet_socket_set_option(fd, ENET_SOCKOPT_RCVBUF, 1 << 20);
  }
  ~Socket() { enet_socket_destroy(fd); }
  ENetAddress address() const {
    ENetAddress a{};
    REQUIRE(enet_socket_get_address(fd, &a) == 0);
    return a;
  }
};

// Receives until `count` datagrams arrived or 5 s passed; returns their bytes.
std::vector<std::string> receive(const Socket& socket, size_t count) {
  std::vector<std::string> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char data[2048];
  while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
    enet_uint32 condition = ENET_SOCKET_WAIT_RECEIVE;
    if (enet_socket_wait(socket.fd, &condition, 50) != 0 || !(condition & ENET_SOCKET_WAIT_RECEIVE)) continue;
    ENetBuffer buffer{};
    buffer.data = data;
    buffer.dataLength = sizeof data;
    int n = enet_socket_receive(socket.fd, nullptr, &buffer, 1);  // untapped: libenet's own
    if (n > 0) got.emplace_back(data, static_cast<size_t>(n));
  }
  return got;
}

// One datagram from two buffers, as ENet gathers a header and its commands.
int send_two_part(const Socket& from, const ENetAddress& to, const std::string& head, const std::string& body) {
  ENetBuffer buffers[2];
  buffers[0].data = const_cast<char*>(head.data());
  buffers[0].dataLength = head.size();
  buffers[1].data = const_cast<char*>(body.data());
  buffers[1].dataLength = body.size();
  return enet_socket_send(from.fd, &to, buffers, 2);
}

}  // namespace

TEST_CASE("socket tap: a batch larger than one sendmmsg delivers every datagram, in order") {
  Socket sender(true), receiver(true);
  SocketTap tap(sender.fd, 1, NetsimConfig{});
  const size_t count = SocketTap::kMaxBatchDatagrams * 2 + 22;
  ENetAddress to = receiver.address();
  {
    SocketTap::Batch batch(tap);
    {
      SocketTap::Batch inner(tap);  // nested: only the outermost one sends
      for (size_t i = 0; i < count / 2; ++i)
        CHECK(send_two_part(sender, to, "d" + std::to_string(i), std::string(40, 'x')) ==
              static_cast<int>(1 + std::to_string(i).size() + 40));
    }
    for (size_t i = count / 2; i < count; ++i)
      send_two_part(sender, to, "d" + std::to_string(i), std::string(40, 'x'));
    // Only full batches have left so far.
    CHECK(tap.stats().batch_syscalls == 2);
  }
  std::vector<std::string> got = receive(receiver, count);
  REQUIRE(got.size() == count);
  for (size_t i = 0; i < count; ++i) CHECK(got[i] == "d" + std::to_string(i) + std::string(40, 'x'));
  CHECK(tap.stats().batched_out == count);
  CHECK(tap.stats().batch_syscalls == 3);
  CHECK(tap.stats().failed_out == 0);

  // Outside a batch a send goes straight out, one system call each.
  send_two_part(sender, to, "late", "");
  CHECK(receive(receiver, 1) == std::vector<std::string>{"late"});
  CHECK(tap.stats().batched_out == count);
}

TEST_CASE("socket tap: a datagram the kernel refuses mid-batch is counted and the rest still go") {
  Socket sender(true), receiver(true);
  SocketTap tap(sender.fd, 1, NetsimConfig{});
  ENetAddress to = receiver.address();
  ENetAddress port_zero = to;
  port_zero.port = 0;  // Linux refuses a UDP send to port 0 with EINVAL
  const size_t count = SocketTap::kMaxBatchDatagrams + 10;
  {
    SocketTap::Batch batch(tap);
    for (size_t i = 0; i < count; ++i) {
      bool refused = i == 5 || i == SocketTap::kMaxBatchDatagrams + 3;
      // ENet is told it went: the kernel sees it only when the batch leaves.
      CHECK(send_two_part(sender, refused ? port_zero : to, std::to_string(i), "") ==
            static_cast<int>(std::to_string(i).size()));
    }
  }
  std::vector<std::string> got = receive(receiver, count - 2);
  REQUIRE(got.size() == count - 2);
  std::vector<std::string> expected;
  for (size_t i = 0; i < count; ++i)
    if (i != 5 && i != SocketTap::kMaxBatchDatagrams + 3) expected.push_back(std::to_string(i));
  CHECK(got == expected);
  CHECK(tap.stats().failed_out == 2);
  CHECK(tap.stats().last_send_errno == EINVAL);
  CHECK(receive(receiver, 1).empty());  // nothing else arrives
}
