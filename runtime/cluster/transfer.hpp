#pragma once
// Moving a client to a seat on another server of the cluster (docs/cluster.md
// "Seat tokens"). The origin asks the target (over the target's inbox) to
// reserve a seat; the target keeps the reservation in memory with what to do
// when the client arrives, and answers with its URL and a one-time token. The
// origin then sends its client `cluster.transfer {id, url, token}`; the client
// runtime hops there (keeping its Lua state and the request `id`), presents
// the token in its hello, and the target seats it and answers request `id`
// (or sends match.found) as if the room had been local all along.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace nshost::cluster {

// What the target reserves, and what it does on redemption.
struct RoomSeatRequest {
  enum class Kind : uint8_t {
    join_room,       // exactly `room_id` (refusals: "no such room", "locked", "full")
    join_or_create,  // a room of `room_type` with a free seat on the target, else a new one
    create,          // a new room of `room_type`, opened (room.create) when the seat is reserved
  };
  Kind kind = Kind::join_room;
  uint64_t room_id = 0;   // join_room
  std::string room_type;  // join_or_create, create
  // The client's options table, msgpack-encoded ("" for none): room.create's
  // options (create) and room.join's on redemption.
  std::string options_msgpack;
  // On redemption: answer this rpc id with the join's rpc.response (0: none).
  uint32_t rpc_id = 0;
  // On redemption, when `match` is set: send match.found {room, room_type,
  // size = match_size, participants} after seating the client.
  bool match = false;
  uint32_t match_size = 0;
  std::vector<uint64_t> participants;
};

// A reserved seat: where the client goes and what it presents.
struct SeatGrant {
  std::string server_id;  // the target
  std::string url;        // "nshost://HOST:PORT", the address clients dial
  std::string token;      // 32 hex characters, one use, until its deadline
  uint64_t room_id = 0;   // the room the seat is in
  std::string room_type;
};

// `grant` is null on failure; `error` is then one of the reasons a client may
// be told: "cluster_unavailable" (Redis down, the target did not answer in
// time, the target is gone), or the target's refusal ("full", "locked", "no
// such room", "unknown room type", "too many rooms on this server", "room
// failed", "too many seat reservations").
using ReserveCallback = std::function<void(const SeatGrant* grant, std::string_view error)>;

// Implemented by the cluster (runtime/cluster/cluster.hpp); null without --cluster.
class Transfers {
 public:
  virtual ~Transfers() = default;
  // This server's id (16 hex characters).
  virtual const std::string& server_id() const = 0;
  // Reserves a seat on `server_id` (this server itself included: no Redis
  // round trip then). `callback` runs later on the loop, exactly once, never
  // inside this call; a late answer (past the request deadline, 2 s) is
  // dropped and the seat it reserved expires on the target.
  virtual void reserve_remote(std::string_view server_id, RoomSeatRequest request, ReserveCallback callback) = 0;
  // Sends session `session_id` (a member of this server's rooms) the
  // `cluster.transfer {id = rpc_id, url, token}` message; the client follows
  // it. False when the session is gone or has no codec.
  virtual bool send_transfer(uint64_t session_id, uint32_t rpc_id, const SeatGrant& grant) = 0;
  // The least-loaded live server that defines `room_type` (fewest clients;
  // this one on a tie); "" when none is known (Redis down: this one if it
  // defines the type).
  virtual std::string pick_server(std::string_view room_type) const = 0;
};

}  // namespace nshost::cluster
