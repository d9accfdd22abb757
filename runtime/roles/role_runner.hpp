#pragma once
// The lifecycle every role follows, driven by main: construct, start() (bind
// or connect, load the script, start ticking), run the loop, begin_shutdown()
// on SIGINT/SIGTERM (called on the loop thread; main's signal thread wakes
// it, and ends the process itself if the role is not done 1.8 s after the
// signal), and on_finished once everything it owns is closed.
#include <functional>
#include <string>

namespace nshost {

class RoleRunner {
 public:
  virtual ~RoleRunner() = default;
  // On failure returns false with one readable line in `error`; exit_code()
  // then says 1 (script or runtime error) or 2 (usage error).
  virtual bool start(std::string& error) = 0;
  // Stops cleanly: the script's shutdown handler, then the peers are told.
  // A second call while stopping finishes at once.
  virtual void begin_shutdown() = 0;
  virtual bool finished() const = 0;
  virtual int exit_code() const = 0;
  // Called once when the role has closed all it owns.
  std::function<void()> on_finished;
};

}  // namespace nshost
