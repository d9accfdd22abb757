#pragma once
// --bots=N: N independent client instances in one process, on one loop. Each
// bot is a full ClientRole (its own Lua state, its own ENet host and UDP
// socket, so each is a real peer of the server) logging as "client#<i>"
// (i = 1..N). Every bot dials from the same address, and a server admits only
// --max-pending-per-address (default 4) handshakes per address at once,
// refusing the rest silently; so by default at most kJoinWindow bots are
// joining at any time, the next starting as soon as one has joined (or
// finished). --bots-ramp=PER_S instead starts them at that rate, whatever is
// still joining (ENet's retransmitted connect covers a refusal). The fleet
// finishes when every bot has finished; its exit code is the highest of theirs.
#include <memory>
#include <string>
#include <vector>

#include "runtime/roles/client_role.hpp"
#include "runtime/roles/role_runner.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost {

class BotFleet final : public RoleRunner {
 public:
  // How often the ramp timer starts the bots that are due.
  static constexpr uint64_t kRampIntervalMs = 10;
  // Bots joining (started, not yet joined or finished) at once: below the
  // server's default per-address cap on pending handshakes.
  static constexpr size_t kJoinWindow = 2;

  BotFleet(uv_loop_t* loop, Options options);
  ~BotFleet() override;

  // Raises the open-file limit to fit N sockets, then starts the first bot
  // (failing like a single client would if the script does not load) and the
  // rest at once or on the ramp.
  bool start(std::string& error) override;
  // Stops the ramp and asks every started bot to leave; a second call makes
  // every bot stop without waiting for the server.
  void begin_shutdown() override;
  bool finished() const override { return finished_; }
  int exit_code() const override;

  size_t started() const { return bots_.size(); }

 private:
  bool start_bot(std::string& error);
  void start_due();
  void on_bot_finished();

  uv_loop_t* loop_;
  Options options_;
  std::vector<std::unique_ptr<ClientRole>> bots_;
  UvHandle<uv_timer_t> ramp_;
  int64_t ramp_start_ns_ = 0;
  size_t seated_before_ = 0;  // bots_[0..seated_before_) have all joined or finished
  int failed_exit_code_ = 0;  // from bots that did not start
  bool stopping_ = false;
  bool finished_ = false;
};

}  // namespace nshost
