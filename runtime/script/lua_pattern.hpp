#pragma once
// Lua 5.4 patterns (reference manual §6.4.1) over a byte span, with a step
// budget. The standard matcher backtracks without bound inside one C call
// (".-.-.-b" over a few KB of text runs for hours), where neither the
// instruction budget nor the handler timeout can stop it; this one counts
// its work and gives up past a budget, and polls a stop callback as it goes.
// Results, captures and error texts are those of Lua 5.4's string library;
// runtime/script/string_patterns.cpp puts it behind string.find/match/gmatch/gsub.
// No Lua here: errors are PatternError exceptions, which the caller turns
// into Lua errors (they must not cross a Lua frame).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace nshost {

class PatternError : public std::runtime_error {
 public:
  enum class Kind {
    malformed,    // a bad pattern or capture reference: the text says which
    too_complex,  // recursion deeper than PatternMatcher::kMaxDepth
    over_budget,  // more than the budget's max_steps steps
    stopped,      // PatternBudget::should_stop returned true
  };
  PatternError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// The work one call may do. A step is one attempt to match one pattern item
// at one subject position (a single-character test, a backtrack, a capture
// boundary), plus one per byte scanned by %b or compared by %1..%9 and one
// per 16 bytes of a [set] scanned.
struct PatternBudget {
  uint64_t max_steps = 0;  // past it: PatternError over_budget; 0: no limit
  // Polled every kPollSteps steps; returning true aborts the match with
  // PatternError stopped. Must not throw. nullptr: never polled.
  bool (*should_stop)(void* context) = nullptr;
  void* context = nullptr;
};

// One subject and one pattern, both borrowed: they must outlive the matcher
// and stay where they are. The pattern is taken as is: an anchor ('^') is
// the caller's to strip (gmatch keeps it as a literal, as Lua does).
// Trivially destructible, so it may live in a Lua userdata.
class PatternMatcher {
 public:
  static constexpr int kMaxCaptures = 32;  // LUA_MAXCAPTURES
  static constexpr int kMaxDepth = 200;    // MAXCCALLS of lstrlib.c
  static constexpr uint64_t kPollSteps = 4096;
  static constexpr size_t npos = static_cast<size_t>(-1);

  PatternMatcher(std::string_view subject, std::string_view pattern, const PatternBudget& budget);

  // Starts a new budget (each Lua call gets its own).
  void reset_budget(const PatternBudget& budget) {
    budget_ = budget;
    steps_ = 0;
    next_poll_ = budget.max_steps != 0 && budget.max_steps < kPollSteps ? budget.max_steps + 1 : kPollSteps;
  }
  uint64_t steps_used() const { return steps_; }

  // Matches the pattern at subject offset `start` (<= subject size); returns
  // the end offset of the match, or npos. After a match, the captures below
  // describe it. Throws PatternError.
  size_t match_at(size_t start);
  // The first match starting at `start` or later (only at `start` if
  // `anchored`), as Lua's find and match search: its start in `begin` and its
  // end returned, or npos.
  size_t search(size_t start, bool anchored, size_t& begin);

  struct Capture {
    enum class Kind { text, position } kind = Kind::text;
    size_t begin = 0;   // offset in the subject; for a position capture, the position (0-based)
    size_t length = 0;  // bytes, for text
  };
  // Captures of the last successful match.
  int capture_count() const { return level_; }
  // Capture `index` (0-based) of the last match [match_begin, match_end):
  // with no captures, index 0 is the whole match. Throws PatternError
  // ("invalid capture index %N", "unfinished capture").
  Capture capture(int index, size_t match_begin, size_t match_end) const;

 private:
  using Byte = unsigned char;
  static constexpr ptrdiff_t kOpen = -1;      // capture not closed yet
  static constexpr ptrdiff_t kPosition = -2;  // "()" capture
  struct Slot {
    const Byte* init;
    ptrdiff_t length;  // or kOpen / kPosition
  };

  const Byte* match(const Byte* s, const Byte* p);
  const Byte* open_capture(const Byte* s, const Byte* p, ptrdiff_t what);
  const Byte* close_capture(const Byte* s, const Byte* p);
  const Byte* back_reference(const Byte* s, Byte digit);
  const Byte* balanced(const Byte* s, const Byte* p);
  const Byte* greedy(const Byte* s, const Byte* p, const Byte* ep);
  const Byte* lazy(const Byte* s, const Byte* p, const Byte* ep);
  bool single(const Byte* s, const Byte* p, const Byte* ep);
  // Steps for one test of the item [p, ep): a set is scanned on every test,
  // so a long one costs more than a step.
  static uint64_t item_cost(const Byte* p, const Byte* ep) {
    return *p == '[' ? 1 + (static_cast<uint64_t>(ep - p) >> 4) : 1;
  }
  bool in_set(int c, const Byte* p, const Byte* ep);
  const Byte* item_end(const Byte* p);
  static bool in_class(int c, int cl);

  void step(uint64_t n = 1) {
    steps_ += n;
    if (steps_ >= next_poll_) poll();
  }
  void poll();
  [[noreturn]] static void fail(PatternError::Kind kind, const std::string& message);

  const Byte* subject_;
  const Byte* subject_end_;
  const Byte* pattern_;
  const Byte* pattern_end_;
  int level_ = 0;
  int depth_left_ = kMaxDepth;
  Slot slots_[kMaxCaptures];
  uint64_t steps_ = 0;
  uint64_t next_poll_ = 0;
  PatternBudget budget_;
};

}  // namespace nshost
