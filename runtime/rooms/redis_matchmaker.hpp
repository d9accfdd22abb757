#pragma once
// The matchmaking queue in Redis, shared by every server of a cluster
// (docs/cluster.md "Matchmaking across servers", "Redis keys"). Each server
// queues its own sessions; whichever server holds a type's forming lease
// reads the queue, groups it with the same rules as the in-process queue
// (rooms::group_tickets, the type's `match` running on that server) and
// claims each group with one EVAL that removes its tickets only if every one
// of them is still queued. So a ticket is in at most one match however many
// servers form at once, and a ticket dequeued (or of a departed session)
// before the claim is never matched.
//
// Keys (prefix "nshost:mm:"): `types` SET of room types with a queue;
// `queue:<type>` ZSET ticket id -> enqueue time in µs from Redis TIME (made
// strictly increasing per type, so the order is the enqueue order);
// `ticket:<type>:<ticket id>` HASH {server, session, properties (msgpack),
// enqueued_ms}; `lease:<type>` the forming lease (server id, PX lease_ms);
// `last:<type>` the newest score (a round that read an older one forms
// again); `alive:<server id>` (PX 3 heartbeats, at least 3 s), renewed by
// each server's heartbeat, enqueues and reads: a round drops the tickets of a server whose key expired. A
// ticket id is "<server id>.<session id>".
//
// Everything runs on the loop thread; Redis answers arrive through the
// cluster::RedisClient's callbacks. The matchmaker keeps a mirror of this server's
// own tickets (is_queued, queued, the local limits and deadlines).
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/cluster/redis_client.hpp"
#include "runtime/core/uv_handle.hpp"
#include "runtime/rooms/matchmaker.hpp"

namespace nshost::rooms {

struct RedisMatchmakerConfig {
  std::string server_id;              // this server's cluster id (the tickets' owner)
  uint32_t heartbeat_ms = 1000;       // alive key renewal; it lives 3 heartbeats (at least 3 s)
  uint32_t lease_ms = 2000;           // a forming lease's lifetime (a holder that died frees it then)
  size_t max_queued_per_type = 1024;  // this server's sessions waiting per type ("queue full")
  size_t max_cluster_queued = 65536;  // every server's tickets per type ("queue full")
  size_t max_read = 4096;             // the oldest tickets one forming round reads
};

class RedisMatchmaker final : public rooms::Matchmaker {
 public:
  // `loop` and `redis` must outlive this. Starts the heartbeat timer.
  RedisMatchmaker(uv_loop_t* loop, cluster::RedisClient& redis, RedisMatchmakerConfig config);
  ~RedisMatchmaker() override;
  RedisMatchmaker(const RedisMatchmaker&) = delete;
  RedisMatchmaker& operator=(const RedisMatchmaker&) = delete;

  void attach(Eligible eligible, MatchSink sink, std::function<void()> wake) override;
  bool define(rooms::MatchType type, std::string& error) override;
  const rooms::MatchType* find_type(std::string_view room_type) const override;
  // Answers from the loop once Redis has the ticket ("cluster_unavailable"
  // when Redis is down or the command failed).
  void enqueue(rooms::Ticket ticket, uint64_t now_ms, EnqueueDone done) override;
  // Forgets the session's tickets here and removes them from Redis (EVAL).
  size_t dequeue(uint64_t session_id, std::optional<std::string_view> room_type) override;
  size_t queued(std::string_view room_type) const override;
  bool is_queued(uint64_t session_id, std::string_view room_type) const override;
  // Starts a forming round for each type that is due and has none running;
  // the matches it claims reach the sink later. A match's participants of
  // other servers carry their server id in Ticket::server (empty: ours);
  // this server's participants are already forgotten here.
  void form(uint64_t now_ms) override;
  std::optional<uint64_t> next_due_ms(uint64_t now_ms) const override;
  void clear() override;

  // One of this server's sessions was matched by another server (its
  // tickets are gone from Redis): forget them here.
  void forget(uint64_t session_id);
  // Whether an enqueue of the session still waits for Redis's answer (a
  // match notice can overtake it: it comes on another connection).
  bool awaiting_answer(uint64_t session_id) const;
  // Called after each enqueue's `done`, with its session.
  void on_answered(std::function<void(uint64_t session_id)> hook) { answered_ = std::move(hook); }
  // Redis came back (it may have lost everything): this server's tickets
  // are queued again and a round is due. The heartbeat calls it when it
  // finds the connection up again after a loss.
  void on_redis_up();

  const std::string& server_id() const { return config_.server_id; }
  // Forming rounds run here, and groups whose claim was refused (a ticket
  // had left the queue in the meantime).
  uint64_t rounds() const { return rounds_; }
  uint64_t claims_refused() const { return claims_refused_; }
  uint64_t predicate_calls() const { return predicate_calls_; }

  // "<server id>.<session id>"
  static std::string ticket_id(std::string_view server_id, uint64_t session_id);
  static std::string queue_key(std::string_view room_type);
  static std::string ticket_key(std::string_view room_type, std::string_view ticket_id);
  static std::string lease_key(std::string_view room_type);
  static std::string alive_key(std::string_view server_id);

 private:
  struct Local {
    rooms::Ticket ticket;
    uint64_t local_enqueued_ms = 0;  // loop time: the local max_wait deadline
    bool in_redis = false;           // the enqueue was answered
  };
  struct Type {
    rooms::MatchType type;
    std::map<uint64_t, Local> local;  // this server's waiting sessions
    bool changed = false;             // a round is due now
    bool forming = false;             // a round is in flight
    std::optional<uint64_t> retry_ms;     // the lease was elsewhere: try then (loop time)
    std::optional<uint64_t> deadline_ms;  // an anchor's max_wait seen in the last round (loop time)
    uint64_t last_round_ms = 0;
    // Verdicts of `match`, by (older, newer) score: a score is one enqueue.
    std::map<std::pair<uint64_t, uint64_t>, bool> verdicts;
  };
  struct Read;

  void start_round(Type& t);
  void on_read(const std::string& room_type, const cluster::RedisReply* reply);
  void finish_round(Type& t, std::optional<uint64_t> retry_in_ms);
  void send_dequeue(uint64_t session_id, std::string_view room_type);
  void heartbeat();
  void load_scripts();
  void wake();
  Type* find(std::string_view room_type);
  uint64_t now() const { return uv_now(loop_); }
  // 3 heartbeats, at least 3 s: a loop late by a moment under load must not
  // lose its players' tickets.
  uint64_t alive_ttl_ms() const { return std::max<uint64_t>(3ull * config_.heartbeat_ms, 3000); }

  uv_loop_t* loop_;
  cluster::RedisClient& redis_;
  RedisMatchmakerConfig config_;
  Eligible eligible_;
  MatchSink sink_;
  std::function<void()> wake_;
  std::function<void(uint64_t)> answered_;
  std::map<std::string, Type, std::less<>> types_;
  UvHandle<uv_timer_t> heartbeat_timer_;
  // Callbacks outlive nothing: they check this token before touching `this`.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool scripts_loaded_ = false;  // SCRIPT LOAD sent on this connection
  bool redis_was_up_ = false;  // at the last heartbeat
  bool had_redis_ = false;     // connected at some heartbeat before
  uint64_t rounds_ = 0;
  uint64_t claims_refused_ = 0;
  uint64_t predicate_calls_ = 0;
};

}  // namespace nshost::rooms
