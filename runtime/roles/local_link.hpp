#pragma once
// The in-process link between a listen server and its local client
// (--role=host): no socket and no copy. Each side holds a stand-in ENetPeer
// for the other (the server's stands for the client, the client's for the
// server) and sends through PeerLink as it would to a remote peer; PeerLink
// hands the ENetPacket itself to the link (one reference taken, as
// enet_peer_send takes one), and the link gives it to the other side's
// EnetEndpoint::Listener as an ENET_EVENT_TYPE_RECEIVE, so both roles'
// receive paths are the ones ENet drives.
//
// Delivery: in send order (at least ENet's per-channel order, on channels
// 0-4 alike), never in the caller's stack: events queue up and are handed
// out from a uv_idle handle on a later loop iteration, so a handler's send
// never runs the other state's handler inside it. Connects and disconnects
// are events too, with ENet's codes and order: disconnect and
// disconnect_later deliver what was sent before them, then DISCONNECT(code)
// to the other side and DISCONNECT(0) to the initiator; disconnect_now and
// reset drop what is in flight and tell the other side only (code 0 for a
// reset, as an ENet timeout would).
//
// Budgets (those of an EnetEndpoint): a packet over max_message_bytes is
// refused (as ENet's maximumPacketSize); a send that would make one
// direction hold more than max_queued_bytes undelivered (ENet's
// maximumWaitingData) is refused, reliable or not, so a script cannot make
// the link hold unbounded memory. A refused packet stays the caller's.
//
// Stand-in peers are told apart by peer->host == nullptr (every ENet peer
// has its host); peer->data points back to the link.
#include <enet/enet.h>
#include <uv.h>

#include <cstdint>
#include <deque>

#include "runtime/core/uv_handle.hpp"
#include "runtime/transport/enet_endpoint.hpp"

namespace nshost {

class LocalLink {
 public:
  enum class Side { server = 0, client = 1 };
  // What the server logs as the local client's address (and the client as
  // the server's).
  static constexpr const char* kAddressText = "local";

  LocalLink(uv_loop_t* loop, size_t max_message_bytes);
  ~LocalLink();
  LocalLink(const LocalLink&) = delete;
  LocalLink& operator=(const LocalLink&) = delete;

  // Creates the idle handle; a libuv error code, or 0.
  int start();
  // Where each side's events go; both before connect().
  void attach(Side side, EnetEndpoint::Listener& listener) { listeners_[index(side)] = &listener; }
  // Forgets a side's listener (it is being destroyed): nothing more reaches it.
  void detach(Side side) { listeners_[index(side)] = nullptr; }

  // The client dials: CONNECT to the server, then to the client, on a later
  // iteration. Returns the client's stand-in for the server.
  ENetPeer* connect();

  // The link a stand-in peer belongs to; nullptr for a real ENet peer.
  static LocalLink* of(const ENetPeer* peer) {
    return peer && !peer->host ? static_cast<LocalLink*>(peer->data) : nullptr;
  }
  // enet_peer_send for a stand-in: 0 and the link holds one reference, or
  // -1 and the packet is untouched (not connected, too large, budget full).
  int send(ENetPeer* from, uint8_t channel_id, ENetPacket* packet);
  // enet_peer_disconnect / _later (the same here: what was sent goes first).
  void disconnect(ENetPeer* from, uint32_t code);
  void disconnect_now(ENetPeer* from, uint32_t code);
  void reset(ENetPeer* from);

  ENetPeer* peer(Side side) { return &peers_[index(side)]; }
  // Undelivered bytes queued toward `to`.
  size_t queued_bytes(Side to) const { return queued_bytes_[index(to)]; }
  size_t max_queued_bytes() const { return max_queued_bytes_; }
  // Sends refused for the budgets, since start.
  uint64_t refused() const { return refused_; }

 private:
  struct Pending {
    Side to;
    ENetEventType type;
    uint8_t channel_id = 0;
    uint32_t data = 0;
    ENetPacket* packet = nullptr;  // RECEIVE only; one reference held
    uint64_t generation = 0;
  };
  static size_t index(Side side) { return static_cast<size_t>(side); }
  static Side other(Side side) { return side == Side::server ? Side::client : Side::server; }
  Side side_of(const ENetPeer* peer) const { return peer == &peers_[0] ? Side::server : Side::client; }
  void push(Pending pending);
  void release(Pending& pending);
  // Drops everything in flight (a reset or disconnect_now).
  void drop_in_flight();
  void deliver_pending();
  static void on_idle(uv_idle_t* idle);

  uv_loop_t* loop_;
  size_t max_message_bytes_;
  size_t max_queued_bytes_;
  // [server]: the server's stand-in for the client; [client]: the client's for the server.
  ENetPeer peers_[2]{};
  EnetEndpoint::Listener* listeners_[2]{};
  std::deque<Pending> queue_;
  size_t queued_bytes_[2]{};
  uint64_t generation_ = 0;  // bumped when in-flight traffic is dropped
  uint64_t refused_ = 0;
  UvHandle<uv_idle_t> idle_;
};

}  // namespace nshost
