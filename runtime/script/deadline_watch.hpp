#pragma once
// The handler timeout (--handler-timeout): stops a Lua handler that runs past
// its deadline without a per-instruction hook. In Lua 5.4 any count hook makes
// the VM trap on every instruction, about 2x for pure-Lua loops, so the hook
// is set only once a deadline has passed:
//   - a watchdog thread per loop thread polls the deadline of the handler
//     running on that thread (an atomic; arming costs a clock read);
//   - past it, the watchdog signals the loop thread (SIGRTMIN+3) until the
//     handler ends;
//   - the signal handler, on the loop thread, calls the armed Target's
//     on_deadline(), which sets a count hook with lua_sethook, the way lua.c
//     stops a running script on SIGINT (lua_sethook may be called from a
//     signal handler); the hook raises at the next VM instruction.
// What the hook cannot stop - a finalizer or a message handler (Lua runs
// them with hooks off), a long C call, a loop in lua_close's finalizers - is
// ended by the escalation: if the same target is still armed a grace of
// max(1 s, its timeout) past its deadline, the watchdog writes one line to
// stderr ("nshost: a Lua handler could not be stopped (...); exiting") and
// ends the process with _exit(kStuckExitCode): no destructor, no lua_close.
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace nshost {

class DeadlineWatch {
 public:
  class Target {
   public:
    // Called in a signal handler on the loop thread while this target is
    // armed and past its deadline, possibly more than once: only
    // async-signal-safe work (plain stores, lua_sethook).
    virtual void on_deadline() noexcept = 0;

   protected:
    ~Target() = default;
  };

  // What arm() replaced: a handler of another state may run inside one.
  struct Armed {
    Target* target = nullptr;
    int64_t deadline_ns = 0;
    int64_t escalate_ns = 0;
    int64_t stalled_at_arm_ns = 0;
  };

  // The exit code of a process the escalation ended (docs/reliability.md).
  static constexpr int kStuckExitCode = 3;
  // The escalation's grace past a deadline that was `timeout_ns` after arm().
  static int64_t escalation_grace_ns(int64_t timeout_ns);

  // The watch of the calling thread, created (with its watchdog thread) on
  // first use and destroyed when the last holder lets go. `timeout_ms` is
  // the holder's timeout: the watchdog polls at a tenth of the smallest one
  // held (5..100 ms), so a handler stops within about 10 % past its deadline.
  static std::shared_ptr<DeadlineWatch> for_this_thread(uint32_t timeout_ms);

  // Watches `target` until disarm(): past `deadline_ns` (monotonic clock, as
  // monotonic_now_ns()) its on_deadline() is called; past deadline_ns +
  // escalation_grace_ns(deadline_ns - now) the process ends (see above).
  // Time in which the watchdog itself did not run (the process was stopped,
  // e.g. SIGSTOP, or starved of CPU) moves both points later: a frozen
  // process is not a runaway handler.
  // Only on the watch's own thread. Returns what it replaced, for disarm().
  Armed arm(Target* target, int64_t deadline_ns);
  void disarm(const Armed& previous);

  static int64_t monotonic_now_ns();

  explicit DeadlineWatch(uint32_t timeout_ms);  // use for_this_thread()
  ~DeadlineWatch();
  DeadlineWatch(const DeadlineWatch&) = delete;
  DeadlineWatch& operator=(const DeadlineWatch&) = delete;

 private:
  void run(int64_t started_ns);  // started_ns: when the watch was made (monotonic)
  void hold(uint32_t timeout_ms);

  pthread_t loop_thread_;
  std::atomic<int64_t> deadline_ns_{0};  // 0: no handler armed
  std::atomic<int64_t> escalate_ns_{0};  // 0: no handler armed
  // Total time the watchdog woke later than two poll periods, and its value
  // when the armed handler was armed.
  std::atomic<int64_t> stalled_ns_{0};
  std::atomic<int64_t> stalled_at_arm_ns_{0};
  std::atomic<int> poll_ms_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace nshost
