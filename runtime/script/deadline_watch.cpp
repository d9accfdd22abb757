#include "runtime/script/deadline_watch.hpp"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace nshost {
namespace {

// Read by the signal handler on this thread; set by arm()/disarm() on it.
thread_local DeadlineWatch::Target* t_target = nullptr;
thread_local int64_t t_deadline_ns = 0;
thread_local int64_t t_stalled_at_arm_ns = 0;
thread_local const std::atomic<int64_t>* t_stalled_ns = nullptr;  // the watch's, lock-free
thread_local std::weak_ptr<DeadlineWatch> t_watch;

int deadline_signal() { return SIGRTMIN + 3; }

int poll_ms_for(uint32_t timeout_ms) { return static_cast<int>(std::clamp<uint32_t>(timeout_ms / 10, 5, 100)); }

void on_deadline_signal(int) {
  int saved_errno = errno;
  DeadlineWatch::Target* target = t_target;
  if (!target) {
    errno = saved_errno;
    return;
  }
  int64_t stalled_ns = t_stalled_ns ? t_stalled_ns->load(std::memory_order_relaxed) - t_stalled_at_arm_ns : 0;
  if (DeadlineWatch::monotonic_now_ns() >= t_deadline_ns + stalled_ns) target->on_deadline();
  errno = saved_errno;
}

// The loop thread may hold stdio's lock (or the allocator's): write(2) and
// _exit only.
[[noreturn]] void end_stuck_process(int64_t grace_ms) {
  char line[200];
  int n = std::snprintf(line, sizeof line,
                        "nshost: a Lua handler could not be stopped (finalizer, message handler or C call ran past "
                        "--handler-timeout + %lld ms); exiting\n",
                        static_cast<long long>(grace_ms));
  if (n > 0 && write(STDERR_FILENO, line, std::min<size_t>(n, sizeof line - 1)) < 0) {
    // Nothing more to do: the process ends either way.
  }
  _exit(DeadlineWatch::kStuckExitCode);
}

void install_signal_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = on_deadline_signal;
    sigemptyset(&action.sa_mask);
    // Interrupted system calls restart: the signal only ever means "a
    // handler overran" and must not surface as EINTR elsewhere.
    action.sa_flags = SA_RESTART;
    sigaction(deadline_signal(), &action, nullptr);
  });
}

}  // namespace

int64_t DeadlineWatch::monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::shared_ptr<DeadlineWatch> DeadlineWatch::for_this_thread(uint32_t timeout_ms) {
  if (auto watch = t_watch.lock()) {
    watch->hold(timeout_ms);
    return watch;
  }
  auto watch = std::make_shared<DeadlineWatch>(timeout_ms);
  t_watch = watch;
  return watch;
}

DeadlineWatch::DeadlineWatch(uint32_t timeout_ms) : loop_thread_(pthread_self()), poll_ms_(poll_ms_for(timeout_ms)) {
  install_signal_handler();
  t_stalled_ns = &stalled_ns_;
  // The clock starts here, not when the thread first runs: a process stopped
  // before the new thread was scheduled still has that time counted as stalled.
  watchdog_ = std::thread([this, started_ns = monotonic_now_ns()] { run(started_ns); });
}

DeadlineWatch::~DeadlineWatch() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  watchdog_.join();
}

void DeadlineWatch::hold(uint32_t timeout_ms) {
  int wanted = poll_ms_for(timeout_ms);
  int current = poll_ms_.load();
  while (wanted < current && !poll_ms_.compare_exchange_weak(current, wanted)) {
  }
}

int64_t DeadlineWatch::escalation_grace_ns(int64_t timeout_ns) { return std::max<int64_t>(1'000'000'000, timeout_ns); }

DeadlineWatch::Armed DeadlineWatch::arm(Target* target, int64_t deadline_ns) {
  Armed previous{t_target, t_deadline_ns, escalate_ns_.load(std::memory_order_relaxed), t_stalled_at_arm_ns};
  int64_t stalled_now_ns = stalled_ns_.load(std::memory_order_relaxed);
  stalled_at_arm_ns_.store(stalled_now_ns, std::memory_order_relaxed);
  t_stalled_at_arm_ns = stalled_now_ns;
  escalate_ns_.store(deadline_ns + escalation_grace_ns(deadline_ns - monotonic_now_ns()), std::memory_order_release);
  // The deadline first: the signal handler reads it once it sees the target.
  t_deadline_ns = deadline_ns;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_target = target;
  deadline_ns_.store(deadline_ns, std::memory_order_release);
  return previous;
}

void DeadlineWatch::disarm(const Armed& previous) {
  deadline_ns_.store(previous.target ? previous.deadline_ns : 0, std::memory_order_release);
  escalate_ns_.store(previous.target ? previous.escalate_ns : 0, std::memory_order_release);
  stalled_at_arm_ns_.store(previous.stalled_at_arm_ns, std::memory_order_relaxed);
  t_target = nullptr;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_deadline_ns = previous.deadline_ns;
  t_stalled_at_arm_ns = previous.stalled_at_arm_ns;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_target = previous.target;
}

void DeadlineWatch::run(int64_t started_ns) {
  std::unique_lock lock(mutex_);
  int64_t last_poll_ns = started_ns;
  while (!wake_.wait_for(lock, std::chrono::milliseconds(poll_ms_.load()), [&] { return stopping_; })) {
    int64_t now_ns = monotonic_now_ns();
    // Woken far later than asked: the process was stopped or starved, and the
    // loop thread with it; that time is not the handler's.
    int64_t poll_ns = int64_t{poll_ms_.load()} * 1'000'000;
    if (now_ns - last_poll_ns > 2 * poll_ns) stalled_ns_.fetch_add(now_ns - last_poll_ns - poll_ns);
    last_poll_ns = now_ns;
    int64_t stalled_ns = stalled_ns_.load() - stalled_at_arm_ns_.load(std::memory_order_relaxed);
    int64_t deadline_ns = deadline_ns_.load(std::memory_order_acquire);
    // Signalled again at every poll while the handler overruns: a hook the
    // script's own code replaced in between is set again.
    if (deadline_ns != 0 && now_ns >= deadline_ns + stalled_ns) pthread_kill(loop_thread_, deadline_signal());
    int64_t escalate_ns = escalate_ns_.load(std::memory_order_acquire);
    if (escalate_ns != 0 && now_ns >= escalate_ns + stalled_ns && deadline_ns != 0)
      end_stuck_process((escalate_ns - deadline_ns) / 1'000'000);
  }
}

}  // namespace nshost
