#pragma once
// The client side of rooms (docs/rooms.md "Client"): one per ClientRole (so
// every bot has its own). It keeps the session's codec and id from the
// welcome, the requests awaiting their rpc.response (each with the script's
// callback as a registry ref), and the rooms the client is in (each with the
// one handle userdata the script sees for it), and dispatches the catalog
// messages that arrive on the room channels.
//
// Callbacks run exactly once, never inside the call that made the request:
// an answer from the server runs its callback as it arrives; a local failure
// (not connected, the link ended) is queued and delivered from a zero-delay
// timer, or at once when the role reports the end from the loop
// (end_session(true)). Every call into Lua goes through the ScriptHost
// (call_back / invoke: protected, under the limits). Registry refs belong to
// the state of the owner's script; forget_script() drops them without
// calling anything when that state is replaced. The destructor never touches
// Lua (the state may already be closed).
#include <lua.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "runtime/core/uv_handle.hpp"
#include "runtime/rooms/client_state.hpp"
#include "runtime/rooms/codec.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost {
class ScriptHost;
}

namespace nshost::rooms {

// The room handle the client script sees: a full userdata of this type with
// one user value, the room type (a string). The metatable is registered by
// bindings/room_handle.cpp.
inline constexpr const char* kRoomHandleType = "nshost.room";
struct RoomHandle {
  int64_t room = 0;
  uint64_t generation = 0;  // the membership it belongs to; never reused
};
// Pushes a new handle (may raise a Lua error: out of memory).
void push_room_handle(lua_State* L, int64_t room, uint64_t generation, std::string_view type);

class ClientRooms : private ClientStates::Owner {
 public:
  // Requests (join, create, list, leave with a callback) awaiting an answer,
  // local failures not yet delivered included.
  static constexpr size_t kMaxPending = 64;
  // `error` messages from the server logged at warn per session; the rest at debug.
  static constexpr uint64_t kMaxLoggedErrors = 16;

  // What the rooms need of their client role.
  class Owner {
   public:
    virtual ~Owner() = default;
    // The script whose state holds the refs; null while there is none.
    virtual ScriptHost* rooms_script() = 0;
    // True while joined with a live link (catalog messages can be sent).
    virtual bool rooms_link_up() const = 0;
    // Sends one catalog message on kChannelRoomReliable (reliable) or
    // kChannelRoomUnreliable; false when ENet refused it.
    virtual bool send_catalog(std::string_view bytes, bool reliable) = 0;
    virtual uint32_t rooms_max_message_bytes() const = 0;
    // cluster.transfer (docs/cluster.md): the server moved this client's
    // request to a seat on another server of its cluster. The role leaves
    // the server, joins `url` presenting `token`, and keeps its state.
    virtual void rooms_transfer(std::string url, std::string token) {
      (void)url;
      (void)token;
    }
  };

  // match: matchmaking.enqueue / matchmaking.dequeue (docs/matchmaking.md).
  enum class Kind : uint8_t { join, list, leave, match };
  // Whether a request can be made now.
  enum class Gate : uint8_t { ok, busy, no_rooms, not_connected };

  ClientRooms(Owner& owner, std::string log_tag);
  ~ClientRooms();
  ClientRooms(const ClientRooms&) = delete;
  ClientRooms& operator=(const ClientRooms&) = delete;

  // Creates the delivery timer on `loop`; false with `error` from libuv.
  bool start(uv_loop_t* loop, std::string& error);
  // Closes the timer (the role's finish).
  void stop();

  // The link: a welcome that starts a session (first join, a fresh rejoin,
  // a hop's destination) or resumes one; the link lost while the reconnect
  // ladder runs (pending requests fail, rooms stay); the session over
  // (rooms left with "disconnected", pending requests fail). `now`: deliver
  // at once (the caller is on the loop, not inside Lua); else from the timer.
  void on_welcome(const wire::Welcome& welcome);
  void on_resumed(const wire::Welcome& welcome);
  void on_link_lost(bool now);
  // `reason` is what each room's client.room_left gets; with `keep_held`
  // the request a transfer carries survives into the next session (the
  // target answers it); otherwise it fails with the others.
  void end_session(bool now, const char* reason = "disconnected", bool keep_held = false);
  // The script's state is being replaced: forget every ref, call nothing.
  void forget_script();
  // Delivers queued local failures and departures now.
  void flush();

  // One catalog packet from the server (channel 3 or 4) while joined.
  void on_catalog(uint8_t channel_id, std::string_view bytes);

  // For the bindings, inside a Lua call.
  Gate gate() const;
  // The session's codec; msgpack when there is none (to check a value's
  // encoding while not connected).
  Codec codec() const { return codec_.value_or(Codec::msgpack); }
  bool has_codec() const { return codec_.has_value(); }
  uint64_t session_id() const { return session_id_; }
  uint32_t max_message_bytes() const { return owner_.rooms_max_message_bytes(); }
  // A request id not in use (1..2^32-1).
  uint32_t next_request_id();
  // Sends an encoded request carrying `id` and takes `callback_ref` (a
  // registry ref, LUA_NOREF for none) until its answer. False with `error`
  // ("ENOBUFS: ...") when ENet refused it; the ref stays the caller's then.
  bool send_request(uint32_t id, Kind kind, std::string_view bytes, int callback_ref, std::string& error);
  // Takes `callback_ref` and calls it later with nil, "not connected", "ENOTCONN".
  void fail_later(Kind kind, int callback_ref);
  // The membership behind a handle, or null when it is gone (stale).
  bool live(const RoomHandle& handle) const;
  bool link_up() const { return owner_.rooms_link_up(); }
  // Sends a room message (already encoded); false with `error`.
  bool send_message(std::string_view bytes, bool reliable, std::string& error);
  // Forgets the room at once (its handle goes stale, no room_left); the
  // caller sends the room.leave.
  void forget_room(int64_t room);

  size_t pending_count() const { return pending_.size() + queued_callbacks_ + (held_ ? 1 : 0); }
  size_t room_count() const { return rooms_.size(); }
  // `error` messages the server sent and catalog packets that did not decode or were not understood.
  uint64_t errors_received() const { return errors_received_; }
  uint64_t bad_packets() const { return bad_packets_; }
  // The mirrors of the rooms' states (r.state, r:on_change).
  ClientStates& states() { return states_; }

 private:
  struct Pending {
    Kind kind;
    int callback_ref;  // LUA_NOREF: answer consumed silently
  };
  struct Room {
    std::string type;
    uint64_t generation = 0;
    int handle_ref = LUA_NOREF;  // the one userdata the script sees for it
  };
  // A local outcome waiting for the timer: a failed request's callback, or
  // a room left (client.room_left(handle, reason)).
  struct Queued {
    bool room_left = false;
    int ref = LUA_NOREF;  // the callback, or the room's handle
    std::string text;     // the failure's message, or the reason
    const char* what = "rooms callback";  // names a failed request's callback in the log
  };

  void on_response(const Message& message);
  void on_room_message(const Message& message, bool bytes);
  void on_room_left(const Message& message);
  // match.found: the server seated this client in a room; client.match_found.
  void on_match_found(const Message& message);
  void on_match_failed(const Message& message);
  void on_transfer(const Message& message);
  void on_error(const Message& message);
  void bad_packet(const std::string& why);
  // Runs a request's callback with what `push` pushes, then releases the ref.
  template <class Push>
  void run_callback(int ref, const char* what, Push&& push);
  void release(int ref);
  void fail_pending(std::vector<Queued>& out);
  void leave_rooms(std::vector<Queued>& out, const char* reason);
  void enqueue(std::vector<Queued> items, bool now);
  void deliver(std::vector<Queued>& items);
  void arm_timer();

  // ClientStates::Owner
  ScriptHost* state_script() override { return owner_.rooms_script(); }
  int state_room_handle(int64_t room) override;
  bool send_state(std::string_view bytes, bool reliable) override;

  Owner& owner_;
  std::string log_tag_;
  ClientStates states_;
  UvHandle<uv_timer_t> timer_;
  std::optional<Codec> codec_;  // the welcome's; none: the server has no rooms
  uint64_t session_id_ = 0;
  uint32_t last_id_ = 0;
  uint64_t last_generation_ = 0;
  std::map<uint32_t, Pending> pending_;
  // The request a cluster.transfer carries to the next session (id 0: a
  // transfer that answers no request, e.g. a match).
  std::optional<std::pair<uint32_t, Pending>> held_;
  std::map<int64_t, Room> rooms_;
  std::vector<Queued> queued_;
  size_t queued_callbacks_ = 0;  // of queued_, the failed requests
  uint64_t errors_received_ = 0;
  uint64_t bad_packets_ = 0;
  uint64_t session_complaints_ = 0;  // errors and bad packets this session (log limit)
};

}  // namespace nshost::rooms
