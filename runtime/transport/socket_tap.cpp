#include "runtime/transport/socket_tap.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <enet/protocol.h>

#include <netinet/udp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "runtime/core/uv_handle.hpp"

namespace nshost {
namespace {

using SendFn = int (*)(ENetSocket, const ENetAddress*, const ENetBuffer*, size_t);
using ReceiveFn = int (*)(ENetSocket, ENetAddress*, ENetBuffer*, size_t);

// libenet's own definitions, behind ours in the lookup order. Resolved on
// first use; atomics only because threads other than a loop's (tests' plain
// ENet hosts) may resolve them too.
std::atomic<SendFn> g_real_send{nullptr};
std::atomic<ReceiveFn> g_real_receive{nullptr};

template <typename Fn>
Fn resolve_original(const char* name, void* ours, std::string* error) {
  dlerror();
  void* found = dlsym(RTLD_NEXT, name);
  if (!found || found == ours) {
    const char* why = dlerror();
    if (error)
      *error = std::string("transport: cannot find libenet's ") + name + " behind the socket tap (" +
               (found ? "it resolves to the tap itself" : why ? why : "dlsym returned null") + ")";
    return nullptr;
  }
  return reinterpret_cast<Fn>(found);
}

// The interposed calls cannot report an error to ENet's caller in any
// useful way, and forwarding to nothing is not an option: one line, then stop.
[[noreturn]] void missing_original(const std::string& error) {
  std::fprintf(stderr, "nshost: %s\n", error.c_str());
  std::abort();
}

SendFn real_send() {
  SendFn fn = g_real_send.load(std::memory_order_relaxed);
  if (__builtin_expect(fn == nullptr, 0)) {
    std::string error;
    fn = resolve_original<SendFn>("enet_socket_send", reinterpret_cast<void*>(&::enet_socket_send), &error);
    if (!fn) missing_original(error);
    g_real_send.store(fn, std::memory_order_relaxed);
  }
  return fn;
}

ReceiveFn real_receive() {
  ReceiveFn fn = g_real_receive.load(std::memory_order_relaxed);
  if (__builtin_expect(fn == nullptr, 0)) {
    std::string error;
    fn = resolve_original<ReceiveFn>("enet_socket_receive", reinterpret_cast<void*>(&::enet_socket_receive), &error);
    if (!fn) missing_original(error);
    g_real_receive.store(fn, std::memory_order_relaxed);
  }
  return fn;
}

// Socket fd -> its tap, without a lock or a hash on the per-datagram path:
// two levels of atomic pointers, kTableChunkFds fds per chunk, a chunk
// allocated when a tap first registers an fd in its range and kept for the
// life of the process (at most kTableChunks * 8 KiB). Lookups are plain loads;
// registration, rare, takes g_table_mutex. Not thread_local: a tap made on one
// thread and driven from another must still be found (a silent bypass is
// what this table must never produce).
constexpr size_t kTableChunkFds = 1024;
constexpr size_t kTableChunks = 4096;  // fds below 4 Mi
struct TableChunk {
  std::atomic<SocketTap*> taps[kTableChunkFds];
};
std::atomic<TableChunk*> g_table[kTableChunks];
std::mutex g_table_mutex;

inline SocketTap* find_tap(ENetSocket socket) {
  auto fd = static_cast<size_t>(socket);
  if (fd >= kTableChunkFds * kTableChunks) return nullptr;
  TableChunk* chunk = g_table[fd / kTableChunkFds].load(std::memory_order_acquire);
  return chunk ? chunk->taps[fd % kTableChunkFds].load(std::memory_order_acquire) : nullptr;
}

bool register_tap(ENetSocket socket, SocketTap* tap) {
  auto fd = static_cast<size_t>(socket);
  if (socket < 0 || fd >= kTableChunkFds * kTableChunks) return false;
  std::lock_guard lock(g_table_mutex);
  TableChunk* chunk = g_table[fd / kTableChunkFds].load(std::memory_order_acquire);
  if (!chunk) {
    chunk = new TableChunk{};  // kept: a lookup on another thread may hold it
    g_table[fd / kTableChunkFds].store(chunk, std::memory_order_release);
  }
  chunk->taps[fd % kTableChunkFds].store(tap, std::memory_order_release);
  return true;
}

void unregister_tap(ENetSocket socket, SocketTap* tap) {
  auto fd = static_cast<size_t>(socket);
  if (socket < 0 || fd >= kTableChunkFds * kTableChunks) return;
  std::lock_guard lock(g_table_mutex);
  TableChunk* chunk = g_table[fd / kTableChunkFds].load(std::memory_order_acquire);
  if (!chunk) return;
  // Only our own entry: the fd may already belong to a newer tap.
  SocketTap* expected = tap;
  chunk->taps[fd % kTableChunkFds].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel);
}

// Test-only (docs/reliability.md, "The socket tap"): with this variable set,
// no tap is ever found by the interposed calls, as if libenet bypassed them.
// It can only make the start-up check fail; it cannot turn a tap off quietly.
bool simulate_bypass() {
  const char* value = std::getenv("NSHOST_TEST_BYPASS_SOCKET_TAP");
  return value && *value && std::strcmp(value, "0") != 0;
}

}  // namespace

SocketTap::SocketTap(ENetSocket socket, size_t peer_count, const NetsimConfig& netsim, size_t receive_batch)
    : socket_(socket), peer_count_(peer_count), receive_batch_(std::max<size_t>(1, receive_batch)) {
  if (netsim.enabled) {
    outbound_ = std::make_unique<NetsimLink>(netsim, 1);
    inbound_ = std::make_unique<NetsimLink>(netsim, 2);
  }
  registered_ = !simulate_bypass() && register_tap(socket_, this);
}

SocketTap::~SocketTap() {
  if (registered_) unregister_tap(socket_, this);
}

std::string SocketTap::check_originals() {
  if (g_real_send.load(std::memory_order_relaxed) && g_real_receive.load(std::memory_order_relaxed)) return {};
  std::string error;
  auto send = resolve_original<SendFn>("enet_socket_send", reinterpret_cast<void*>(&::enet_socket_send), &error);
  if (!send) return error;
  auto receive =
      resolve_original<ReceiveFn>("enet_socket_receive", reinterpret_cast<void*>(&::enet_socket_receive), &error);
  if (!receive) return error;
  g_real_send.store(send, std::memory_order_relaxed);
  g_real_receive.store(receive, std::memory_order_relaxed);
  return {};
}

void SocketTap::begin_probe(const ENetAddress& self) {
  probe_ = Probe{};
  probe_.armed = true;
  probe_.self = self;
  receive_calls_ = 0;
}

SocketTap::ProbeResult SocketTap::end_probe() {
  probe_.armed = false;
  return ProbeResult{probe_.sent, receive_calls_ > 0, probe_.received, probe_.send_errno};
}

void SocketTap::pump() {
  if (!outbound_) return;
  int64_t now = monotonic_ns();
  NetsimLink::Datagram d;
  while (outbound_->pop_due(now, d)) {
    ENetBuffer buffer;
    buffer.data = d.bytes.data();
    buffer.dataLength = d.bytes.size();
    real_send()(socket_, &d.address, &buffer, 1);  // a lost send is just more loss
  }
}

int64_t SocketTap::next_due_ns() const {
  if (!outbound_) return -1;
  int64_t a = outbound_->next_due_ns(), b = inbound_->next_due_ns();
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
}

void SocketTap::count_malformed(const ENetAddress& from) {
  ++stats_.malformed_in;
  stats_.last_malformed_from = from;
}

int SocketTap::on_send(const ENetAddress* address, const ENetBuffer* buffers, size_t count) {
  if (address && count > 0 && buffers[0].dataLength >= 2 &&
      datagram_peerless(static_cast<const uint8_t*>(buffers[0].data), buffers[0].dataLength)) {
    // A client's CONNECT (rare): one buffer, with the cookie if it has one.
    std::string bytes;
    for (size_t i = 0; i < count; ++i) bytes.append(static_cast<const char*>(buffers[i].data), buffers[i].dataLength);
    if (probe_.armed && datagram_same_address(*address, probe_.self)) {
      // The start-up check's CONNECT to ourselves: straight out, unshaped.
      probe_.sent = true;
      probe_.bytes = bytes;
      int sent = real_send()(socket_, address, buffers, count);
      if (sent < 0) probe_.send_errno = errno;
      return sent;
    }
    size_t original = bytes.size();
    note_connect(*address, bytes);
    if (bytes.size() != original) {
      ENetBuffer one;
      one.data = bytes.data();
      one.dataLength = bytes.size();
      int sent = send_flat(address, &one, 1);
      return sent < 0 ? sent : static_cast<int>(original);
    }
  }
  return send_flat(address, buffers, count);
}

int SocketTap::send_flat(const ENetAddress* address, const ENetBuffer* buffers, size_t count) {
  if (!outbound_) {
    if (batch_depth_ == 0 || !address) {
      send_batch();  // keeps the socket's datagrams in order
      return real_send()(socket_, address, buffers, count);
    }
    if (batch_.size() == kMaxHeldDatagrams) send_batch();
    Queued q{batch_bytes_.size(), 0, {}};
    for (size_t i = 0; i < count; ++i) {
      const auto* data = static_cast<const uint8_t*>(buffers[i].data);
      batch_bytes_.insert(batch_bytes_.end(), data, data + buffers[i].dataLength);
    }
    q.length = batch_bytes_.size() - q.offset;
    q.to.sin_family = AF_INET;
    q.to.sin_port = htons(address->port);
    q.to.sin_addr.s_addr = address->host;
    batch_.push_back(q);
    ++stats_.batched_out;
    return static_cast<int>(q.length);
  }
  if (!address) return real_send()(socket_, address, buffers, count);
  std::string bytes;
  for (size_t i = 0; i < count; ++i) bytes.append(static_cast<const char*>(buffers[i].data), buffers[i].dataLength);
  int length = static_cast<int>(bytes.size());
  outbound_->submit(monotonic_ns(), *address, std::move(bytes));
  pump();
  return length;
}

size_t SocketTap::build_messages(size_t from, bool gso) {
  size_t n = order_.size(), m = 0;
  for (size_t p = from; p < n; ++m) {
    const Queued& lead = batch_[order_[p]];
    size_t end = p + 1, bytes = lead.length;
    // order_ groups each address's datagrams, in the order ENet sent them: a
    // run of one size with at most a shorter last one (a snapshot's
    // fragments) goes as one UDP GSO message.
    while (gso && end < n && end - p < kMaxGsoSegments) {
      const Queued& q = batch_[order_[end]];
      if (q.to.sin_addr.s_addr != lead.to.sin_addr.s_addr || q.to.sin_port != lead.to.sin_port ||
          q.length > lead.length || bytes + q.length > kMaxGsoBytes)
        break;
      bytes += q.length;
      ++end;
      if (q.length < lead.length) break;
    }
    msghdr& h = headers_[m].msg_hdr;
    h = msghdr{};
    h.msg_name = const_cast<sockaddr_in*>(&lead.to);
    h.msg_namelen = sizeof(sockaddr_in);
    h.msg_iov = &iovecs_[p];
    h.msg_iovlen = end - p;
    if (end - p > 1) {
      h.msg_control = controls_[m].bytes;
      h.msg_controllen = sizeof controls_[m].bytes;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      auto segment = static_cast<uint16_t>(lead.length);
      std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
    }
    first_of_[m] = p;
    p = end;
  }
  return m;
}

void SocketTap::send_batch() {
  if (batch_.empty()) return;
  size_t n = batch_.size();
  if (headers_.size() < n) {
    headers_.resize(n);
    iovecs_.resize(n);
    controls_.resize(n);
    first_of_.resize(n);
  }
  // Each address's datagrams together, each in its own order; datagrams to
  // different addresses carry no order between them.
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) order_[i] = i;
  auto key = [&](size_t i) {
    return (static_cast<uint64_t>(batch_[i].to.sin_addr.s_addr) << 16) | batch_[i].to.sin_port;
  };
  std::stable_sort(order_.begin(), order_.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  // Built only now: batch_bytes_ may have moved while the batch grew.
  for (size_t p = 0; p < n; ++p) {
    iovecs_[p].iov_base = batch_bytes_.data() + batch_[order_[p]].offset;
    iovecs_[p].iov_len = batch_[order_[p]].length;
  }
  size_t count = build_messages(0, true), next = 0;
  while (next < count) {
    ++stats_.batch_syscalls;
    size_t chunk = std::min(count - next, kMaxMessagesPerCall);
    int sent = sendmmsg(socket_, headers_.data() + next, static_cast<unsigned>(chunk), MSG_NOSIGNAL);
    if (sent > 0) {
      for (size_t k = next; k < next + static_cast<size_t>(sent); ++k)
        if (headers_[k].msg_hdr.msg_iovlen > 1) ++stats_.gso_messages;
      next += static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    int error = sent < 0 ? errno : EIO;
    size_t first = first_of_[next], datagrams = headers_[next].msg_hdr.msg_iovlen;
    if (datagrams > 1) {
      // A kernel or route without UDP GSO, or one bad datagram in the run:
      // the rest of this batch goes one datagram per message.
      ++stats_.gso_fallbacks;
      count = build_messages(first, false);
      next = 0;
      continue;
    }
    // sendmmsg reports an error only for the first message of the call (a
    // later one ends the call short, and the retry meets it first), so this
    // datagram is lost, as a failed sendmsg would lose it; the rest still go.
    ++stats_.failed_out;
    stats_.last_send_errno = error;
    ++next;
  }
  batch_.clear();
  batch_bytes_.clear();
}

int SocketTap::receive_batched(ENetAddress* address, ENetBuffer* buffers, size_t count) {
  while (true) {
    if (in_next_ == in_count_) {
      in_next_ = in_count_ = 0;
      if (in_headers_.empty()) {
        // Set up once: the kernel writes back only each message's length,
        // flags and address length, which recvmmsg sets on every call.
        in_bytes_.resize(receive_batch_ * ENET_PROTOCOL_MAXIMUM_MTU);
        in_headers_.resize(receive_batch_);
        in_iovecs_.resize(receive_batch_);
        in_from_.resize(receive_batch_);
        for (size_t i = 0; i < receive_batch_; ++i) {
          in_iovecs_[i].iov_base = in_bytes_.data() + i * ENET_PROTOCOL_MAXIMUM_MTU;
          in_iovecs_[i].iov_len = ENET_PROTOCOL_MAXIMUM_MTU;
          msghdr& h = in_headers_[i].msg_hdr;
          h = msghdr{};
          h.msg_name = &in_from_[i];
          h.msg_iov = &in_iovecs_[i];
          h.msg_iovlen = 1;
        }
      }
      for (size_t i = 0; i < receive_batch_; ++i) in_headers_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      int n = recvmmsg(socket_, in_headers_.data(), static_cast<unsigned>(receive_batch_), MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        return -1;  // as ENet's own receive reports a socket error
      }
      if (n == 0) return 0;
      ++stats_.receive_syscalls;
      in_count_ = static_cast<size_t>(n);
    }
    size_t i = in_next_++;
    const mmsghdr& m = in_headers_[i];
    ENetAddress from{};
    from.host = in_from_[i].sin_addr.s_addr;
    from.port = ntohs(in_from_[i].sin_port);
    const auto* data = static_cast<const uint8_t*>(in_iovecs_[i].iov_base);
    if (m.msg_hdr.msg_flags & MSG_TRUNC) {
      // Longer than any ENet datagram: ENet's own receive would fail the
      // whole service call for it; here it is one more malformed datagram.
      ++stats_.datagrams_in;
      ++stats_.truncated_in;
      count_malformed(from);
      continue;
    }
    size_t length = m.msg_len;
    if (!admit(data, length, from)) continue;
    if (count < 1 || length > buffers[0].dataLength) return -1;
    std::memcpy(buffers[0].data, data, length);
    if (address) *address = from;
    return static_cast<int>(length);
  }
}

int SocketTap::on_receive(ENetAddress* address, ENetBuffer* buffers, size_t count) {
  ++receive_calls_;
  if (!inbound_ && receive_batch_ > 1 && count == 1) return receive_batched(address, buffers, count);
  if (!inbound_) {
    while (true) {
      ENetAddress from{};
      int n = real_receive()(socket_, &from, buffers, count);
      if (n <= 0) return n;
      size_t length = static_cast<size_t>(n);
      if (count == 1 && !admit(static_cast<const uint8_t*>(buffers[0].data), length, from)) continue;
      if (address) *address = from;
      return static_cast<int>(length);
    }
  }
  pump();
  // Take everything the socket holds into the simulated link, then hand ENet
  // the next datagram that is due.
  uint8_t scratch[ENET_PROTOCOL_MAXIMUM_MTU];
  int64_t now = monotonic_ns();
  while (true) {
    ENetBuffer buffer{};
    buffer.data = scratch;
    buffer.dataLength = sizeof scratch;
    ENetAddress from{};
    int n = real_receive()(socket_, &from, &buffer, 1);
    if (n == 0) break;
    if (n < 0) {
      if (inbound_->queued() == 0) return n;
      break;
    }
    size_t length = static_cast<size_t>(n);
    if (admit(scratch, length, from))
      inbound_->submit(now, from, std::string(reinterpret_cast<char*>(scratch), length));
  }
  NetsimLink::Datagram d;
  if (count < 1 || !inbound_->pop_due(now, d)) return 0;
  if (d.bytes.size() > buffers[0].dataLength) return -1;
  std::memcpy(buffers[0].data, d.bytes.data(), d.bytes.size());
  if (address) *address = d.address;
  return static_cast<int>(d.bytes.size());
}

}  // namespace nshost

// The interposed ENet socket calls (see socket_tap.hpp). They keep ENet's C
// linkage and contract: bytes sent or received, 0 for "would block", -1 on error.
extern "C" {

ENET_API int enet_socket_send(ENetSocket socket, const ENetAddress* address, const ENetBuffer* buffers,
                              size_t count) {
  if (nshost::SocketTap* tap = nshost::find_tap(socket)) return tap->on_send(address, buffers, count);
  return nshost::real_send()(socket, address, buffers, count);
}

ENET_API int enet_socket_receive(ENetSocket socket, ENetAddress* address, ENetBuffer* buffers, size_t count) {
  if (nshost::SocketTap* tap = nshost::find_tap(socket)) return tap->on_receive(address, buffers, count);
  return nshost::real_receive()(socket, address, buffers, count);
}

}
