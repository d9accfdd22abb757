#pragma once
// Server-to-server requests over Redis pub/sub (docs/cluster.md "The
// cluster"). Each server SUBSCRIBEs nshost:inbox:<its id>; a request is a
// PUBLISH to the target's channel of one small JSON message
//   {"k":"req","kind":K,"rid":N,"from":ID,"body":{...}}
// and its answer a PUBLISH back to the sender's channel
//   {"k":"ans","rid":N,"body":{...}}.
// Every request has a deadline: an answer after it is dropped (whatever it
// reserved expires on the target). A PUBLISH that reached no subscriber (the
// target is gone) fails the request at once.
#include <uv.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/cluster/redis_client.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost::cluster {

class Inbox {
 public:
  static constexpr uint32_t kDefaultDeadlineMs = 2000;
  static constexpr size_t kMaxPending = 4096;
  static constexpr size_t kMaxMessageBytes = 256 * 1024;

  // `reply` sends the answer (once; later calls are ignored).
  using Reply = std::function<void(nlohmann::json body)>;
  using Handler = std::function<void(const nlohmann::json& body, std::string_view from, Reply reply)>;
  // `answer` is null on failure; `error` is then "cluster_unavailable".
  using Done = std::function<void(const nlohmann::json* answer, std::string_view error)>;

  Inbox(uv_loop_t* loop, RedisClient& redis, std::string server_id, std::string log_tag);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Subscribes to this server's channel (kept across reconnects by the client).
  void start();
  void on(std::string kind, Handler handler);
  // `done` runs exactly once, later, from the loop.
  void request(std::string_view to, std::string kind, nlohmann::json body, Done done,
               uint32_t deadline_ms = kDefaultDeadlineMs);
  // Fails every request in flight (Redis lost): their answers could not come.
  void fail_all();
  size_t pending() const { return pending_.size(); }
  static std::string channel_of(std::string_view server_id);

 private:
  struct Pending {
    Done done;
    uint64_t deadline_ms = 0;
  };
  void on_message(std::string_view message);
  void finish(uint64_t rid, const nlohmann::json* answer);
  void sweep();
  void arm();
  // Runs `fn` from the loop (never inside the caller).
  void later(std::function<void()> fn);

  uv_loop_t* loop_;
  RedisClient& redis_;
  std::string id_;
  std::string tag_;
  std::map<std::string, Handler, std::less<>> handlers_;
  std::map<uint64_t, Pending> pending_;
  uint64_t next_rid_ = 1;
  UvHandle<uv_timer_t> sweep_;
  UvHandle<uv_timer_t> later_timer_;
  std::vector<std::function<void()>> later_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nshost::cluster
