// The kernel's floor under the crowd tick (docs/benchmarks.md): what sending
// one UDP datagram to each of N peers costs on this machine, with no ENet
// and no Lua. A child process (niced like bench/run.py's bots) holds N
// sockets on 127.0.0.1 and reads them through epoll; the parent sends one
// BYTES-long datagram to each at every tick, in sendmmsg batches of 64 as
// nshost's socket tap does, and times each tick's sends.
//   nshost_fanout_floor N BYTES TICKS [TICK_HZ]
// Prints one JSON line: {"n":..,"bytes":..,"ticks":..,"send_ms_p50":..,
// "send_ms_p99":..,"send_ms_max":..,"received":..}.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int kBatch = 64;
constexpr int kReceiverNice = 10;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// Reads every socket until a second passes with nothing to read; returns the count.
long receive_all(const std::vector<int>& sockets) {
  int ep = epoll_create1(0);
  for (int fd : sockets) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::vector<epoll_event> ready(sockets.size());
  char buf[2048];
  long received = 0;
  for (;;) {
    int n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 1000);
    if (n == 0) break;
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i)
      while (recv(ready[i].data.fd, buf, sizeof buf, 0) > 0) ++received;
  }
  return received;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: nshost_fanout_floor N BYTES TICKS [TICK_HZ]\n");
    return 2;
  }
  int n = std::atoi(argv[1]), bytes = std::atoi(argv[2]), ticks = std::atoi(argv[3]);
  int tick_hz = argc > 4 ? std::atoi(argv[4]) : 30;
  if (n < 1 || n > 10000 || bytes < 1 || bytes > 1400 || ticks < 1 || tick_hz < 1 || tick_hz > 1000) {
    std::fprintf(stderr, "nshost_fanout_floor: expected N 1..10000, BYTES 1..1400, TICKS >= 1, TICK_HZ 1..1000\n");
    return 2;
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < static_cast<rlim_t>(n) + 64) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, static_cast<rlim_t>(n) + 64);
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  std::vector<int> sockets(n);
  std::vector<sockaddr_in> addresses(n);
  for (int i = 0; i < n; ++i) {
    sockets[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (sockets[i] < 0 || bind(sockets[i], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(sockets[i], reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      std::perror("nshost_fanout_floor: socket");
      return 1;
    }
    addresses[i] = a;
  }
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 1;
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    close(pipe_fds[0]);
    if (nice(kReceiverNice) == -1 && errno != 0) std::perror("nice");
    long received = receive_all(sockets);
    if (write(pipe_fds[1], &received, sizeof received) != sizeof received) _exit(1);
    _exit(0);
  }
  close(pipe_fds[1]);
  for (int fd : sockets) close(fd);

  int sender = socket(AF_INET, SOCK_DGRAM, 0);
  std::vector<char> payload(bytes, 'x');
  std::vector<iovec> iov(n);
  std::vector<mmsghdr> messages(n);
  for (int i = 0; i < n; ++i) {
    iov[i] = {payload.data(), static_cast<size_t>(bytes)};
    messages[i] = {};
    messages[i].msg_hdr.msg_name = &addresses[i];
    messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    messages[i].msg_hdr.msg_iov = &iov[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  std::vector<double> send_ms;
  int64_t period_ns = 1'000'000'000 / tick_hz;
  int64_t next_ns = now_ns() + period_ns;
  for (int k = 0; k < ticks; ++k, next_ns += period_ns) {
    timespec at{static_cast<time_t>(next_ns / 1'000'000'000), static_cast<long>(next_ns % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
    }
    int64_t start_ns = now_ns();
    for (int off = 0; off < n;) {
      int sent = sendmmsg(sender, messages.data() + off, std::min(kBatch, n - off), 0);
      if (sent <= 0) {
        if (errno == EINTR) continue;
        std::perror("nshost_fanout_floor: sendmmsg");
        return 1;
      }
      off += sent;
    }
    send_ms.push_back(static_cast<double>(now_ns() - start_ns) / 1e6);
  }
  long received = -1;
  if (read(pipe_fds[0], &received, sizeof received) != sizeof received) received = -1;
  waitpid(child, nullptr, 0);
  std::printf("{\"n\":%d,\"bytes\":%d,\"ticks\":%d,\"send_ms_p50\":%.3f,\"send_ms_p99\":%.3f,\"send_ms_max\":%.3f,"
              "\"received\":%ld}\n",
              n, bytes, ticks, pct(send_ms, 0.5), pct(send_ms, 0.99), pct(send_ms, 1.0), received);
  return 0;
}
