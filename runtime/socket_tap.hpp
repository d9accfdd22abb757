#pragma once
// The transport seam under ENet. ENet 1.3 has a hook for received datagrams
// (host->intercept) but none for sends, so nshost interposes the two socket
// calls libenet.so makes through its PLT, enet_socket_send and
// enet_socket_receive (defined in socket_tap.cpp; the originals are reached
// with dlsym(RTLD_NEXT)). A socket with no SocketTap attached goes straight to
// ENet's own functions. A tapped socket:
//   - drops datagrams that cannot be ENet protocol for this host (too short,
//     a peer id beyond the peer table, a compressed or unknown command) before
//     ENet parses them, and counts them;
//   - with a NetsimConfig, shapes every datagram sent and received through
//     one NetsimLink per direction;
//   - without one, batches sends: while a Batch is open (EnetEndpoint opens
//     one around each enet_host_service / enet_host_flush pass), every
//     datagram ENet sends is copied (ENet's buffers are only valid during the
//     call) and handed to the kernel with one sendmmsg(2) per
//     kMaxBatchDatagrams when the batch fills or closes, instead of one
//     sendmsg(2) each. ENet is told the datagram was sent; one the kernel
//     refuses later is counted (Stats::failed_out) and the rest still go out.
// Single-threaded per socket: the tap is used from its endpoint's loop only.
#include <enet/enet.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/netsim.hpp"

namespace nshost {

enum class DatagramVerdict { ok, too_short, bad_peer_id, compressed, bad_command };
const char* verdict_name(DatagramVerdict verdict);

// Classifies the bytes of one UDP datagram against the ENet 1.3 protocol
// header as a host with `peer_count` peers and no compressor would see it.
// Conservative: it rejects only what ENet itself would discard.
DatagramVerdict check_enet_datagram(const uint8_t* data, size_t length, size_t peer_count);

class SocketTap {
 public:
  struct Stats {
    uint64_t datagrams_in = 0;  // received from the network, before shaping
    uint64_t malformed_in = 0;  // of those, dropped by check_enet_datagram
    uint64_t refused_connects = 0;  // connects the connect filter turned away
    ENetAddress last_malformed_from{};
    uint64_t batched_out = 0;    // datagrams queued in a batch
    uint64_t batch_syscalls = 0;  // sendmmsg(2) calls made for them
    uint64_t failed_out = 0;     // batched datagrams the kernel refused (lost, like a failed sendmsg)
    int last_send_errno = 0;     // errno of the latest of those
  };

  // Datagrams per sendmmsg(2): enough to amortise the system call; the
  // batch's bytes (at most this many MTUs) are kept between batches.
  static constexpr size_t kMaxBatchDatagrams = 64;

  // Holds this socket's sends from construction to destruction and sends
  // them in batches. Nests: only the outermost one sends on close.
  class Batch {
   public:
    explicit Batch(SocketTap& tap) : tap_(tap) { ++tap_.batch_depth_; }
    ~Batch() {
      if (--tap_.batch_depth_ == 0) tap_.send_batch();
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    SocketTap& tap_;
  };

  // Attaches to `socket` (an ENet host's) until destroyed.
  SocketTap(ENetSocket socket, size_t peer_count, const NetsimConfig& netsim);
  ~SocketTap();
  SocketTap(const SocketTap&) = delete;
  SocketTap& operator=(const SocketTap&) = delete;

  // Asked about every connect datagram before ENet sees it; false drops it
  // (counted in refused_connects). Used to cap half-open handshakes per address.
  using ConnectFilter = std::function<bool(const ENetAddress& from)>;
  void set_connect_filter(ConnectFilter filter) { connect_filter_ = std::move(filter); }

  // Sends the shaped datagrams due by now. Cheap when the simulator is off.
  void pump();
  // Nanoseconds (monotonic) of the next shaped datagram due in either
  // direction, or -1.
  int64_t next_due_ns() const;
  const Stats& stats() const { return stats_; }
  const NetsimLink* outbound() const { return outbound_.get(); }
  const NetsimLink* inbound() const { return inbound_.get(); }

  // Called by the interposed socket functions.
  int on_send(const ENetAddress* address, const ENetBuffer* buffers, size_t count);
  int on_receive(ENetAddress* address, ENetBuffer* buffers, size_t count);

 private:
  bool admit(const uint8_t* data, size_t length, const ENetAddress& from);
  // Hands every queued datagram to the kernel; a refused one is counted and
  // skipped, the rest still sent.
  void send_batch();

  struct Queued {
    size_t offset, length;  // in batch_bytes_
    sockaddr_in to;
  };

  ENetSocket socket_;
  size_t peer_count_;
  std::unique_ptr<NetsimLink> outbound_, inbound_;  // null when the simulator is off
  Stats stats_;
  ConnectFilter connect_filter_;
  int batch_depth_ = 0;
  std::vector<uint8_t> batch_bytes_;
  std::vector<Queued> batch_;
  std::vector<mmsghdr> headers_;  // sized on use: a bot's tap never grows past a few
  std::vector<iovec> iovecs_;
};

}  // namespace nshost
