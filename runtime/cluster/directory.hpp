#pragma once
// The cluster's directory in Redis (docs/cluster.md "Redis keys"): this
// server's entry and its rooms, written by one EVAL on every heartbeat and
// whenever the rooms changed (batched), each key with a lifetime of three
// heartbeats so a server that dies leaves nothing behind for long; its
// server number (room ids are number * 2^32 + a local counter); and a cached
// view of every live server and its rooms, read after each heartbeat. The
// tick never waits on any of it: every Redis call is asynchronous, and the
// view is what the last read returned (empty while Redis is down).
#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cluster/redis_client.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost::cluster {

inline constexpr const char* kKeyPrefix = "nshost:";
inline constexpr uint32_t kMaxServerNumber = 1u << 20;

// One room as the directory lists it.
struct RoomEntry {
  uint64_t id = 0;
  std::string type;
  uint32_t clients = 0;  // seated, plus seats reserved for clients on their way
  uint32_t max_clients = 0;
  bool locked = false;
  std::string metadata_json;  // a JSON object ("{}" for none)
  std::string server;         // the id of the server hosting it
};

struct ServerEntry {
  std::string id;
  std::string url;  // nshost://HOST:PORT
  uint32_t clients = 0;
  uint32_t rooms = 0;
  double load = 0;  // clients / max_clients
  std::vector<std::string> types;
  uint32_t number = 0;
};

// What this server publishes; asked for at each write.
struct LocalView {
  uint32_t clients = 0;
  uint32_t max_clients = 1;
  std::vector<RoomEntry> rooms;  // only rooms with cluster ids (>= 2^32)
};

class Directory {
 public:
  struct Config {
    std::string server_id;  // 16 hex characters
    std::string url;        // what clients dial
    std::vector<std::string> types;  // room types this server defines
    uint32_t heartbeat_ms = 1000;
    uint32_t flush_ms = 20;  // rooms changed: written at most this long after
  };
  using Snapshot = std::function<LocalView()>;

  // `redis` must outlive this. `snapshot` is called on the loop, outside Lua.
  Directory(uv_loop_t* loop, RedisClient& redis, Config config, Snapshot snapshot, std::string log_tag);
  ~Directory();
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  // Starts the heartbeat timer (writes are skipped while Redis is down).
  void start();
  void stop();
  // Redis came (back): claim a number if none yet, write, read.
  void on_redis_up();
  // Redis went: the view is emptied (rooms.list falls back to local rooms).
  void on_redis_down();
  // The rooms changed: written within flush_ms.
  void mark_dirty();
  // Writes now and refreshes the view afterwards; `done` (may be empty)
  // runs once the view is read (or the attempt failed).
  void refresh(std::function<void()> done = {});

  // 0 until the number is claimed. `on_number` runs once when it is.
  uint32_t server_number() const { return number_; }
  void on_number(std::function<void(uint32_t)> callback) { on_number_ = std::move(callback); }

  // The cached view: every live server (this one included) and the rooms of
  // the others.
  const std::vector<ServerEntry>& servers() const { return servers_; }
  const std::vector<RoomEntry>& remote_rooms() const { return remote_rooms_; }
  const ServerEntry* find_server(std::string_view id) const;
  const RoomEntry* find_room(uint64_t id) const;
  // The server with the fewest clients among the live ones defining `type`;
  // this server on a tie, and when the view knows no other.
  std::string pick_server(std::string_view type, uint32_t local_clients, bool defined_here) const;
  const std::string& server_id() const { return config_.server_id; }
  uint64_t writes() const { return writes_; }

 private:
  void write();
  void read(std::function<void()> done);
  void claim_number();
  void apply_view(const RedisReply& reply);

  uv_loop_t* loop_;
  RedisClient& redis_;
  Config config_;
  Snapshot snapshot_;
  std::string tag_;
  UvHandle<uv_timer_t> heartbeat_;
  UvHandle<uv_timer_t> flush_;
  uint32_t number_ = 0;
  bool claiming_ = false;
  bool writing_ = false;
  bool dirty_ = false;
  bool number_conflict_logged_ = false;
  std::function<void(uint32_t)> on_number_;
  std::vector<ServerEntry> servers_;
  std::vector<RoomEntry> remote_rooms_;
  uint64_t writes_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nshost::cluster
