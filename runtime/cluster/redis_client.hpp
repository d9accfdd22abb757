#pragma once
// A Redis client on the libuv loop (hiredis's async API through its libuv
// adapter; docs/cluster.md). Nothing here blocks the loop thread: commands
// are queued on the connection and their callbacks run later from the loop.
// One RedisClient owns two connections: one for commands and one for
// SUBSCRIBE (a subscribed connection can send nothing else). When either
// drops it reconnects with a capped backoff, logs one line per state change
// ("cluster: redis lost (<why>)", "cluster: redis back") and tells its
// Listener; commands sent while down fail at once.
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace nshost::cluster {

// Where Redis is: --cluster=redis://HOST:PORT[/DB].
struct RedisAddress {
  std::string host;   // a name or an IPv4 address
  uint16_t port = 6379;
  uint32_t db = 0;    // SELECT-ed on every (re)connect
};
// Parses "redis://HOST:PORT[/DB]" (PORT 1..65535, DB 0..15); false with a
// readable `error` otherwise. Never throws.
bool parse_redis_url(std::string_view url, RedisAddress& out, std::string& error);

// A reply copied out of hiredis's redisReply, so it may outlive the callback.
struct RedisReply {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  int64_t integer = 0;
  std::string str;                  // string, status and error replies
  std::vector<RedisReply> elements; // array replies
  bool is_error() const { return type == Type::error; }
};

// A server-side Lua script (EVAL): sent once with SCRIPT LOAD on every
// (re)connect and then run with EVALSHA; a NOSCRIPT answer falls back to EVAL.
struct RedisScript {
  std::string name;    // for log lines
  std::string source;  // the Lua text run inside Redis
};

class RedisClient {
 public:
  // The callback of one command: `reply` is null when the command could not
  // complete (the connection dropped, the client closed); `error` then says
  // why ("ECONNRESET: redis lost", "ECANCELED: closed"). A Redis error reply
  // is a reply (reply->is_error()), not a failure. Runs on the loop thread,
  // never inside the call that sent the command; it may send more commands
  // but must not destroy the client.
  using Callback = std::function<void(const RedisReply* reply, std::string_view error)>;
  // A message on a subscribed channel.
  using MessageHandler = std::function<void(std::string_view channel, std::string_view message)>;

  class Listener {
   public:
    virtual ~Listener() = default;
    // Both connections are up (after the first connect and after each loss).
    virtual void on_redis_up() = 0;
    // Either connection dropped (or the first connect failed); `why` is one line.
    virtual void on_redis_down(std::string_view why) = 0;
  };

  struct Limits {
    uint32_t connect_timeout_ms = 1000;
    uint32_t reconnect_min_ms = 100;   // backoff doubles from here ...
    uint32_t reconnect_max_ms = 2000;  // ... up to here
    size_t max_pending_commands = 65536;  // queued, not yet answered; past it a command fails (ENOBUFS)
  };

  // Does not connect yet: start() does. `loop` and `listener` must outlive this.
  RedisClient(uv_loop_t* loop, RedisAddress address, Listener& listener, std::string log_tag);
  RedisClient(uv_loop_t* loop, RedisAddress address, Listener& listener, std::string log_tag, Limits limits);
  ~RedisClient();  // close()s
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Starts connecting (and keeps reconnecting until close()).
  void start();
  // Both connections are up.
  bool connected() const;

  // Sends one command (every argument binary-safe). False, with the callback
  // never called, when not connected or over max_pending_commands; `error`
  // then says why ("ENOTCONN: redis lost", "ENOBUFS: ...").
  bool command(std::vector<std::string> argv, Callback callback, std::string* error = nullptr);
  // EVALSHA (EVAL on NOSCRIPT) of `script` with KEYS and ARGV; same contract.
  bool eval(const RedisScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            Callback callback, std::string* error = nullptr);
  // Subscribes to `channel` on the subscriber connection, now and after every
  // reconnect; `handler` gets each message. One handler per channel.
  void subscribe(std::string channel, MessageHandler handler);
  void unsubscribe(std::string_view channel);

  // Closes both connections: pending callbacks get (null, "ECANCELED: closed")
  // before close() returns; no reconnect follows. The libuv handles are freed
  // on a later loop turn.
  void close();

  // Commands sent so far (for bench/ and the metrics).
  uint64_t commands_sent() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nshost::cluster
