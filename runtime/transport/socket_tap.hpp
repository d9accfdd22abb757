#pragma once
// The transport seam under ENet. ENet 1.3 has a hook for received datagrams
// (host->intercept) but none for sends, so nshost interposes the two socket
// calls libenet.so makes through its PLT, enet_socket_send and
// enet_socket_receive (defined in socket_tap.cpp; the originals are reached
// with dlsym(RTLD_NEXT)). A socket with no SocketTap attached goes straight to
// ENet's own functions. The interposed calls find a socket's tap in a table
// indexed by the fd (no lock, no hash per datagram). Nothing at link time
// guarantees libenet calls through its PLT (-Bsymbolic, hidden visibility or
// LTO would bind its calls to its own definitions and bypass the tap without
// a sound), so EnetEndpoint::create proves it with begin_probe/end_probe
// (docs/reliability.md, "The socket tap"). A tapped socket:
//   - drops datagrams that cannot be ENet protocol for this host (too short,
//     a peer id beyond the peer table, a compressed or unknown command) before
//     ENet parses them, and counts them;
//   - with a NetsimConfig, shapes every datagram sent and received through
//     one NetsimLink per direction;
//   - without one, batches sends: while a Batch is open (EnetEndpoint opens
//     one around each enet_host_service / enet_host_flush pass), every
//     datagram ENet sends is copied (ENet's buffers are only valid during the
//     call) and held; when the batch closes (or holds kMaxHeldDatagrams) the
//     datagrams are grouped by address, each address's in the order ENet sent
//     them, and handed to the kernel with one sendmmsg(2) per
//     kMaxMessagesPerCall messages instead of one sendmsg(2) per datagram. A
//     run of datagrams to one address of one size, with at most a shorter
//     last one (the fragments of a snapshot: ENet sends one datagram per peer
//     per pass over its peers, so they are never adjacent as sent), goes as
//     one UDP GSO message (UDP_SEGMENT), which the kernel splits back into
//     the same datagrams. ENet is told each datagram was sent; one the kernel
//     refuses is counted (Stats::failed_out) and the rest still go out.
// A tapped socket without the simulator may also batch receives: given a
// receive batch of K > 1, one recvmmsg(2) takes up to K datagrams from the
// kernel and ENet's next K receive calls are served from them (held_in()
// says how many are still held; the endpoint services again while any are).
//
// Connect challenge (docs/protocol.md, "Connect challenge"). A server's tap
// (enable_connect_challenge) answers an ENet CONNECT that carries no valid
// cookie with a kChallengeBytes challenge datagram and drops it, so a spoofed
// or one-shot connect never reaches ENet and holds no peer. The cookie is
// HMAC-SHA256(secret, address, port, time bucket), cut to kCookieBytes: the
// server keeps nothing per challenge. Every tap, client or server, answers a
// challenge from an address it sent a CONNECT to by resending that CONNECT
// with the cookie appended (kTrailerBytes), and appends the cookie to every
// later CONNECT to that address (ENet's own retransmits). The server's tap
// checks and strips the trailer before ENet parses the datagram.
// Single-threaded per socket: the tap is used from one thread at a time
// (its endpoint's loop); different sockets' taps may live on different threads.
#include <enet/enet.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/transport/netsim.hpp"

namespace nshost {

enum class DatagramVerdict { ok, too_short, bad_peer_id, compressed, bad_command };
const char* verdict_name(DatagramVerdict verdict);

// Classifies the bytes of one UDP datagram against the ENet 1.3 protocol
// header as a host with `peer_count` peers and no compressor would see it.
// Conservative: it rejects only what ENet itself would discard.
DatagramVerdict check_enet_datagram(const uint8_t* data, size_t length, size_t peer_count);

// Reading an ENet datagram's header, for the tap's files
// (runtime/transport/enet_datagram.cpp). `data` holds at least 2 bytes
// where a length is not given.
// The header's size: 4 with a sent time, else 2.
size_t datagram_header_bytes(const uint8_t* data);
// Addressed to no peer yet (peer id 0xFFF): a CONNECT, or garbage.
bool datagram_peerless(const uint8_t* data, size_t length);
// A peer-less datagram whose first command is a whole CONNECT: the offset of
// that command, or 0.
size_t datagram_connect_offset(const uint8_t* data, size_t length);
// An IPv4 address and port as one map key.
inline bool datagram_same_address(const ENetAddress& a, const ENetAddress& b) {
  return a.host == b.host && a.port == b.port;
}
inline uint64_t datagram_address_key(const ENetAddress& a) { return (static_cast<uint64_t>(a.host) << 16) | a.port; }

class SocketTap {
 public:
  struct Stats {
    uint64_t datagrams_in = 0;  // received from the network, before shaping
    uint64_t receive_syscalls = 0;  // recvmmsg(2) calls that returned datagrams (receive batching only)
    uint64_t truncated_in = 0;  // datagrams longer than ENet's largest, dropped (counted in malformed_in too)
    uint64_t malformed_in = 0;  // of those, dropped by check_enet_datagram
    uint64_t refused_connects = 0;  // connects the connect filter turned away
    uint64_t challenges_sent = 0;    // server: CONNECTs answered with a challenge (no valid cookie)
    uint64_t challenges_answered = 0;  // client: challenges answered by resending a CONNECT
    ENetAddress last_malformed_from{};
    uint64_t batched_out = 0;    // datagrams queued in a batch
    uint64_t batch_syscalls = 0;  // sendmmsg(2) calls made for them
    uint64_t gso_messages = 0;   // messages carrying several datagrams (UDP GSO)
    uint64_t gso_fallbacks = 0;  // GSO messages refused, then resent one datagram each
    uint64_t failed_out = 0;     // batched datagrams the kernel refused (lost, like a failed sendmsg)
    int last_send_errno = 0;     // errno of the latest of those
  };

  // Datagrams held before they are sent even though the batch is open: a
  // server's flush to ~700 peers with 3 fragments each; at most this many
  // MTUs of memory, kept between batches.
  static constexpr size_t kMaxHeldDatagrams = 2048;
  // Messages per sendmmsg(2) call: enough to amortise the system call.
  static constexpr size_t kMaxMessagesPerCall = 64;
  // One UDP GSO message: at most this many segments, and no more payload
  // than one UDP/IPv4 datagram may carry.
  static constexpr size_t kMaxGsoSegments = 64;
  static constexpr size_t kMaxGsoBytes = 65507;

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

  // Attaches to `socket` (an ENet host's) until destroyed. `receive_batch`:
  // datagrams taken per recvmmsg(2) (1: one recvmsg per datagram, ENet's own
  // way; more costs ENET_PROTOCOL_MAXIMUM_MTU bytes each, allocated on first use).
  SocketTap(ENetSocket socket, size_t peer_count, const NetsimConfig& netsim, size_t receive_batch = 1);
  ~SocketTap();
  SocketTap(const SocketTap&) = delete;
  SocketTap& operator=(const SocketTap&) = delete;

  // Asked about every connect datagram before ENet sees it; false drops it
  // (counted in refused_connects). Used to cap half-open handshakes per address.
  using ConnectFilter = std::function<bool(const ENetAddress& from)>;
  void set_connect_filter(ConnectFilter filter) { connect_filter_ = std::move(filter); }

  // Challenge wire format (docs/protocol.md). A challenge: kChallengeMagic,
  // the CONNECT's connectID (4 bytes, as it was on the wire), the cookie. A
  // trailer, appended to a CONNECT datagram: the cookie, kTrailerMagic.
  static constexpr size_t kCookieBytes = 16;
  static constexpr uint8_t kChallengeMagic[4] = {0xFF, 'N', 'S', 'C'};
  static constexpr size_t kChallengeBytes = 4 + 4 + kCookieBytes;
  static constexpr uint8_t kTrailerMagic[4] = {'N', 'S', 'C', 'K'};
  static constexpr size_t kTrailerBytes = kCookieBytes + 4;
  // A cookie is good for the bucket it was made in and the next one.
  static constexpr int64_t kCookieBucketNs = 10'000'000'000;
  // From now on, CONNECTs need a cookie (server side). Draws a random secret.
  void enable_connect_challenge();
  // The cookie this server's tap gives `from` at monotonic time `now_ns`.
  std::string cookie_for(const ENetAddress& from, int64_t now_ns) const;

  // Resolves libenet's own enet_socket_send/enet_socket_receive (behind the
  // interposed ones): "" when both are found, else one line saying which is
  // missing. An interposed call that finds neither prints that line and aborts.
  static std::string check_originals();

  // The start-up check. While a probe is armed, the first datagram sent to
  // `self` (a CONNECT ENet makes to its own socket) goes straight out and is
  // remembered; when it comes back through the tap it is taken, and every
  // other datagram received is dropped before ENet sees it. end_probe says
  // what the tap saw: the send, any receive call, the probe coming back.
  struct ProbeResult {
    bool sent = false;          // ENet's send reached the tap
    bool receive_called = false;  // ENet's receive reached the tap
    bool received = false;      // the probe came back through the tap
    int send_errno = 0;         // the kernel refused the probe's send
  };
  void begin_probe(const ENetAddress& self);
  bool probe_received() const { return probe_.received; }
  bool probe_sent() const { return probe_.sent; }
  uint64_t receive_calls() const { return receive_calls_; }
  ProbeResult end_probe();

  // Sends the shaped datagrams due by now. Cheap when the simulator is off.
  void pump();
  // Nanoseconds (monotonic) of the next shaped datagram due in either
  // direction, or -1.
  int64_t next_due_ns() const;
  const Stats& stats() const { return stats_; }
  // Datagrams taken from the kernel and not yet handed to ENet.
  size_t held_in() const { return in_count_ - in_next_; }
  const NetsimLink* outbound() const { return outbound_.get(); }
  const NetsimLink* inbound() const { return inbound_.get(); }

  // Called by the interposed socket functions.
  int on_send(const ENetAddress* address, const ENetBuffer* buffers, size_t count);
  int on_receive(ENetAddress* address, ENetBuffer* buffers, size_t count);

 private:
  // Whether ENet may see this datagram; may shorten `length` (a connect
  // cookie stripped). Answers challenges and CONNECTs without a cookie.
  bool admit(const uint8_t* data, size_t& length, const ENetAddress& from);
  // Server: true if the CONNECT carries a valid cookie for `from`.
  bool cookie_valid(const uint8_t* data, size_t length, const ENetAddress& from) const;
  // Client: a challenge from a server we sent a CONNECT to; resends it.
  void answer_challenge(const uint8_t* data, const ENetAddress& from);
  // Sends one datagram through the same path as ENet's own sends.
  void send_datagram(const ENetAddress& to, const std::string& bytes);
  // Client: the bytes to send for a peer-less datagram (a CONNECT gets the
  // cookie held for its address, and is remembered for a challenge).
  void note_connect(const ENetAddress& to, std::string& bytes);
  // on_send after the connect cookie: batch, shape or send.
  int send_flat(const ENetAddress* address, const ENetBuffer* buffers, size_t count);
  void count_malformed(const ENetAddress& from);
  // Serves ENet's receive call from the datagrams one recvmmsg(2) took.
  int receive_batched(ENetAddress* address, ENetBuffer* buffers, size_t count);
  // Hands every queued datagram to the kernel; a refused one is counted and
  // skipped, the rest still sent.
  void send_batch();
  // Fills headers_ with the messages for order_[from...], as GSO runs or one
  // datagram each; returns how many.
  size_t build_messages(size_t from, bool gso);

  struct Queued {
    size_t offset, length;  // in batch_bytes_
    sockaddr_in to;
  };

  ENetSocket socket_;
  bool registered_ = false;  // found by the interposed calls
  struct Probe {
    bool armed = false, sent = false, received = false;
    int send_errno = 0;
    ENetAddress self{};
    std::string bytes;  // the probe as sent
  };
  Probe probe_;
  uint64_t receive_calls_ = 0;  // enet_socket_receive calls that reached the tap
  size_t peer_count_;
  std::unique_ptr<NetsimLink> outbound_, inbound_;  // null when the simulator is off
  Stats stats_;
  ConnectFilter connect_filter_;
  bool challenge_ = false;
  uint8_t secret_[32] = {};
  // Client: per server address (host << 16 | port), the last CONNECT sent and
  // the cookie it was given. A client host dials one server at a time; a few
  // entries at most.
  struct Dialled {
    std::string connect;
    std::string cookie;
  };
  std::unordered_map<uint64_t, Dialled> dialled_;
  int batch_depth_ = 0;
  std::vector<uint8_t> batch_bytes_;
  std::vector<Queued> batch_;
  // Sized on use: a bot's tap never grows past a few.
  std::vector<size_t> order_;     // batch_ indices grouped by address
  std::vector<iovec> iovecs_;     // one per datagram, in order_
  std::vector<mmsghdr> headers_;  // one per message
  struct Control {
    alignas(cmsghdr) unsigned char bytes[CMSG_SPACE(sizeof(uint16_t))];
  };
  std::vector<Control> controls_;  // each GSO message's UDP_SEGMENT
  std::vector<size_t> first_of_;   // message -> its first position in order_
  size_t receive_batch_;
  std::vector<uint8_t> in_bytes_;     // receive_batch_ slots of ENET_PROTOCOL_MAXIMUM_MTU bytes
  std::vector<mmsghdr> in_headers_;
  std::vector<iovec> in_iovecs_;
  std::vector<sockaddr_in> in_from_;
  size_t in_count_ = 0, in_next_ = 0;  // datagrams held / handed to ENet so far
};

}  // namespace nshost
