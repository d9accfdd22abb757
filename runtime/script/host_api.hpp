#pragma once
// What the Lua bindings may ask of the role that runs the script. The server
// and client roles implement these; bindings reach them through ScriptHost.
// Implementations never throw into Lua: failures come back as return values.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <uv.h>

#include "runtime/config/options.hpp"
#include "runtime/core/slot_table.hpp"

namespace nshost {

class ServerApi;
class ClientApi;
namespace rooms {
class ClientRooms;
class Room;
class RoomManager;
}  // namespace rooms

enum class Channel { reliable, unreliable };
const char* channel_name(Channel channel);

class HostApi {
 public:
  virtual ~HostApi() = default;
  virtual Role role() const = 0;
  // The loop the role runs on; bindings with I/O of their own (net.*) use it.
  virtual uv_loop_t* loop() const = 0;
  virtual bool headless() const = 0;
  virtual uint32_t tick_rate_hz() const = 0;
  // hz is already checked to be in [kMinTickRateHz, kMaxTickRateHz].
  virtual void set_tick_rate_hz(uint32_t hz) = 0;
  // Server: its slot count. Client: the joined server's, 0 before joining.
  virtual uint32_t max_clients() const = 0;
  virtual uint32_t max_message_bytes() const = 0;
  // Stops the role cleanly after the current handler returns.
  virtual void request_stop(int exit_code) = 0;
  // Told after a handler error was logged (--strict stops the host).
  virtual void on_script_error() = 0;
  // Told when a handler was stopped by --handler-timeout (counted by the server).
  virtual void on_handler_timeout() {}
  // True once the role has closed all it owns (net.* stops waiting then).
  virtual bool finished() const = 0;
  // True once the role has begun to stop (server: from its server.shutdown
  // handler on; client: after sys.quit() or a signal): timers fire no more.
  virtual bool stopping() const { return finished(); }
  // True in both roles of a listen server (--role=host); false otherwise.
  virtual bool listen_server() const { return false; }
  // 1..N inside a bot of --bots=N; 0 otherwise.
  virtual uint32_t bot_index() const { return 0; }
  // The role's own interface: exactly one of these is non-null, matching
  // role(). Bindings use them instead of casting.
  virtual ServerApi* server() { return nullptr; }
  virtual ClientApi* client() { return nullptr; }
  // A room's state (runtime/rooms/room.hpp): its role() is server, server()
  // is null, and its handlers live in the global table "room".
  virtual rooms::Room* room() { return nullptr; }
  // The global table ScriptHost looks handlers up in: the role's name.
  virtual const char* handler_table() const { return role_name(role()); }
};

class ServerApi : public HostApi {
 public:
  ServerApi* server() final { return this; }
  // live: connected. departing: inside its server.disconnect handler, or
  // kicked and not yet gone (slot() works, nothing more is sent). stale: any
  // other id, including an earlier occupant of a reused slot.
  enum class Liveness { live, departing, stale };
  virtual Liveness liveness(ClientId id) const = 0;
  // Queues data for a live client, or reliable data for a client whose slot
  // is held for a resume (replayed when it resumes). False (nothing sent) if
  // departing, for unreliable data to a held slot, or with `error` set
  // ("ENOBUFS: ...") when a held slot's --resume-buffer-size is full.
  virtual bool send(ClientId id, std::string_view data, Channel channel, std::string& error) = 0;
  // Sends one shared packet to every live client (reliable data is also
  // queued for held slots, within their budget); returns how many.
  virtual size_t broadcast(std::string_view data, Channel channel) = 0;
  // Sends one shared packet to each live client of `targets` (reliable data
  // is queued for held ones; departing and stale ones are skipped; a
  // repeated id is sent to again); returns how many.
  virtual size_t broadcast(std::string_view data, Channel channel, std::span<const ClientId> targets) = 0;
  // Tells a live client why and disconnects it; false if already departing.
  virtual bool kick(ClientId id, std::string_view reason) = 0;
  // Sends a live client to `url` (already validated) carrying `handoff` (at
  // most wire::kMaxHandoffBytes) and disconnects it; its server.disconnect
  // reason is "redirect". False if the client is already departing.
  virtual bool redirect(ClientId id, std::string_view url, std::string_view handoff) = 0;
  // The room types and rooms of this server (rooms.define); null when none.
  virtual rooms::RoomManager* rooms() { return nullptr; }
};

class ClientApi : public HostApi {
 public:
  ClientApi* client() final { return this; }
  // The joined server's tick rate in Hz, as its welcome gave it (the rate
  // when this client joined or resumed); 0 when not joined.
  virtual uint32_t server_tick_rate_hz() const = 0;
  // The latest tick number of the joined server this client heard of (its
  // welcome, then a clock message about once a second); nullopt when not
  // joined.
  virtual std::optional<uint64_t> server_tick() const = 0;
  // Queues data for the server; false with `error` ("ENOTCONN: ...") when
  // not joined. Between client.lost and the end of the reconnect ladder,
  // reliable data is queued for the replay after the resume, or refused with
  // "ENOBUFS: ..." past --resume-buffer-size; unreliable data is refused.
  virtual bool send(std::string_view data, Channel channel, std::string& error) = 0;
  // Leaves the current shard (if joined) and joins `url` (already validated)
  // carrying `handoff`. The outcome comes later: client.connect(handoff) on
  // the destination, or client.disconnect("hop_failed: <why>"). False with
  // `error` ("EBUSY: ...") when a connection attempt is already under way.
  virtual bool hop(std::string_view url, std::string_view handoff, std::string& error) = 0;
  // The client side of rooms (runtime/rooms/client_rooms.hpp); null for a
  // client that has none.
  virtual rooms::ClientRooms* rooms() { return nullptr; }
};

}  // namespace nshost
