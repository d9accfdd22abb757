#include "runtime/deadline_watch.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <thread>

using namespace nshost;

namespace {

struct CountingTarget final : DeadlineWatch::Target {
  volatile sig_atomic_t calls = 0;
  void on_deadline() noexcept override { calls = calls + 1; }
};

// Spins (the signal arrives on this thread) until `done` or 2 s pass.
template <class Done>
bool wait_for(Done done) {
  int64_t deadline_ns = DeadlineWatch::monotonic_now_ns() + 2'000'000'000;
  while (!done()) {
    if (DeadlineWatch::monotonic_now_ns() > deadline_ns) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_CASE("deadline watch: one per thread, shared by its holders, gone with the last") {
  std::weak_ptr<DeadlineWatch> first;
  {
    auto a = DeadlineWatch::for_this_thread(1000);
    auto b = DeadlineWatch::for_this_thread(50);
    CHECK(a == b);
    first = a;
    std::shared_ptr<DeadlineWatch> other;
    std::thread([&] { other = DeadlineWatch::for_this_thread(1000); }).join();
    CHECK(other != a);
  }
  CHECK(first.expired());
}

TEST_CASE("deadline watch: the armed target hears of its deadline on this thread, not before, not after disarm") {
  auto watch = DeadlineWatch::for_this_thread(50);
  CountingTarget target;
  int64_t start_ns = DeadlineWatch::monotonic_now_ns();
  DeadlineWatch::Armed previous = watch->arm(&target, start_ns + 60'000'000);
  CHECK(previous.target == nullptr);
  REQUIRE(wait_for([&] { return target.calls > 0; }));
  CHECK(DeadlineWatch::monotonic_now_ns() - start_ns >= 60'000'000);
  watch->disarm(previous);
  // Signals already on their way find nothing armed.
  int calls = target.calls;
  int64_t quiet_until_ns = DeadlineWatch::monotonic_now_ns() + 50'000'000;
  wait_for([&] { return DeadlineWatch::monotonic_now_ns() > quiet_until_ns; });
  CHECK(target.calls == calls);
}

TEST_CASE("deadline watch: a nested arm (another state's handler) hands the outer deadline back on disarm") {
  auto watch = DeadlineWatch::for_this_thread(50);
  CountingTarget outer, inner;
  int64_t now_ns = DeadlineWatch::monotonic_now_ns();
  DeadlineWatch::Armed none = watch->arm(&outer, now_ns + 30'000'000);
  DeadlineWatch::Armed was = watch->arm(&inner, now_ns + 60'000'000'000);
  CHECK(was.target == &outer);
  CHECK(was.deadline_ns == now_ns + 30'000'000);
  watch->disarm(was);
  REQUIRE(wait_for([&] { return outer.calls > 0; }));
  CHECK(inner.calls == 0);
  watch->disarm(none);
}
