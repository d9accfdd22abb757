#pragma once
// The steady clock in milliseconds, for the test helpers' deadlines.
#include <chrono>
#include <cstdint>

namespace nshost::test {

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace nshost::test
