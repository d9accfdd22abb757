#include "runtime/script/lua_pattern.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace nshost {

PatternMatcher::PatternMatcher(std::string_view subject, std::string_view pattern, const PatternBudget& budget)
    : subject_(reinterpret_cast<const Byte*>(subject.data())),
      subject_end_(subject_ + subject.size()),
      pattern_(reinterpret_cast<const Byte*>(pattern.data())),
      pattern_end_(pattern_ + pattern.size()) {
  reset_budget(budget);
}

void PatternMatcher::fail(PatternError::Kind kind, const std::string& message) { throw PatternError(kind, message); }

void PatternMatcher::poll() {
  if (budget_.max_steps != 0 && steps_ > budget_.max_steps)
    fail(PatternError::Kind::over_budget,
         "pattern too complex (over " + std::to_string(budget_.max_steps) + " steps in one call)");
  if (budget_.should_stop && budget_.should_stop(budget_.context))
    fail(PatternError::Kind::stopped, "pattern match stopped");
  // Poll again at the next multiple of kPollSteps, or just past the budget.
  next_poll_ = (steps_ / kPollSteps + 1) * kPollSteps;
  if (budget_.max_steps != 0 && next_poll_ > budget_.max_steps) next_poll_ = std::max(steps_, budget_.max_steps) + 1;
}

size_t PatternMatcher::match_at(size_t start) {
  level_ = 0;
  depth_left_ = kMaxDepth;
  const Byte* end = match(subject_ + start, pattern_);
  return end ? static_cast<size_t>(end - subject_) : npos;
}

size_t PatternMatcher::search(size_t start, bool anchored, size_t& begin) {
  size_t size = static_cast<size_t>(subject_end_ - subject_);
  for (size_t at = start; at <= size; ++at) {
    size_t end = match_at(at);
    if (end != npos) {
      begin = at;
      return end;
    }
    if (anchored) break;
  }
  return npos;
}

PatternMatcher::Capture PatternMatcher::capture(int index, size_t match_begin, size_t match_end) const {
  Capture out;
  if (index >= level_) {
    if (index != 0) fail(PatternError::Kind::malformed, "invalid capture index %" + std::to_string(index + 1));
    out.begin = match_begin;
    out.length = match_end - match_begin;
    return out;
  }
  const Slot& slot = slots_[index];
  if (slot.length == kOpen) fail(PatternError::Kind::malformed, "unfinished capture");
  out.begin = static_cast<size_t>(slot.init - subject_);
  if (slot.length == kPosition) out.kind = Capture::Kind::position;
  else out.length = static_cast<size_t>(slot.length);
  return out;
}

// The end of the single-character item at p (a literal, '.', %x or [set]).
const PatternMatcher::Byte* PatternMatcher::item_end(const Byte* p) {
  Byte c = *p++;
  if (c == '%') {
    if (p == pattern_end_) fail(PatternError::Kind::malformed, "malformed pattern (ends with '%')");
    return p + 1;
  }
  if (c != '[') return p;
  const Byte* first = p;
  if (p != pattern_end_ && *p == '^') ++p;
  // The first character of a set is never its end: "[]]" is the set of ']'.
  do {
    if (p == pattern_end_) fail(PatternError::Kind::malformed, "malformed pattern (missing ']')");
    Byte d = *p++;
    if (d == '%' && p != pattern_end_) ++p;  // "%]" is a member
  } while (p == pattern_end_ || *p != ']');
  step(static_cast<uint64_t>(p - first) >> 4);
  return p + 1;
}

namespace {

// The <ctype.h> classes of byte c in the current locale, as Lua tests them.
// glibc's table is what its isalpha() & co. read; looked up here directly
// because these run once per subject byte and a call each costs a third of
// the matcher's time.
#ifdef __GLIBC__
enum class CharClass : unsigned short {
  alpha = _ISalpha, cntrl = _IScntrl, digit = _ISdigit, graph = _ISgraph, lower = _ISlower,
  punct = _ISpunct, space = _ISspace, upper = _ISupper, alnum = _ISalnum, xdigit = _ISxdigit,
};
bool is(CharClass what, int c) { return ((*__ctype_b_loc())[c] & static_cast<unsigned short>(what)) != 0; }
#else
enum class CharClass { alpha, cntrl, digit, graph, lower, punct, space, upper, alnum, xdigit };
bool is(CharClass what, int c) {
  switch (what) {
    case CharClass::alpha: return std::isalpha(c);
    case CharClass::cntrl: return std::iscntrl(c);
    case CharClass::digit: return std::isdigit(c);
    case CharClass::graph: return std::isgraph(c);
    case CharClass::lower: return std::islower(c);
    case CharClass::punct: return std::ispunct(c);
    case CharClass::space: return std::isspace(c);
    case CharClass::upper: return std::isupper(c);
    case CharClass::alnum: return std::isalnum(c);
    case CharClass::xdigit: return std::isxdigit(c);
  }
  return false;
}
#endif

}  // namespace

// Whether byte c is in the class %cl. The class letters are ASCII; an
// upper-case one is the complement.
bool PatternMatcher::in_class(int c, int cl) {
  bool complement = cl >= 'A' && cl <= 'Z';
  bool yes;
  switch (complement ? cl + ('a' - 'A') : cl) {
    case 'a': yes = is(CharClass::alpha, c); break;
    case 'c': yes = is(CharClass::cntrl, c); break;
    case 'd': yes = is(CharClass::digit, c); break;
    case 'g': yes = is(CharClass::graph, c); break;
    case 'l': yes = is(CharClass::lower, c); break;
    case 'p': yes = is(CharClass::punct, c); break;
    case 's': yes = is(CharClass::space, c); break;
    case 'u': yes = is(CharClass::upper, c); break;
    case 'w': yes = is(CharClass::alnum, c); break;
    case 'x': yes = is(CharClass::xdigit, c); break;
    case 'z': yes = c == 0; break;  // deprecated in the manual, still accepted by 5.4
    default: return cl == c;        // an escaped literal such as %. or %%
  }
  return complement ? !yes : yes;
}

// p is the set's '[', last its closing ']'.
bool PatternMatcher::in_set(int c, const Byte* p, const Byte* last) {
  bool member = true;
  ++p;
  if (*p == '^') {
    member = false;
    ++p;
  }
  for (; p < last; ++p) {
    if (*p == '%') {
      ++p;
      if (in_class(c, *p)) return member;
    } else if (p[1] == '-' && p + 2 < last) {
      if (p[0] <= c && c <= p[2]) return member;
      p += 2;
    } else if (*p == c) {
      return member;
    }
  }
  return !member;
}

bool PatternMatcher::single(const Byte* s, const Byte* p, const Byte* ep) {
  if (s >= subject_end_) return false;
  int c = *s;
  switch (*p) {
    case '.': return true;
    case '%': return in_class(c, p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return *p == c;
  }
}

const PatternMatcher::Byte* PatternMatcher::open_capture(const Byte* s, const Byte* p, ptrdiff_t what) {
  if (level_ >= kMaxCaptures) fail(PatternError::Kind::malformed, "too many captures");
  slots_[level_] = {s, what};
  ++level_;
  const Byte* end = match(s, p);
  if (!end) --level_;
  return end;
}

const PatternMatcher::Byte* PatternMatcher::close_capture(const Byte* s, const Byte* p) {
  int open = level_ - 1;
  while (open >= 0 && slots_[open].length != kOpen) --open;
  if (open < 0) fail(PatternError::Kind::malformed, "invalid pattern capture");
  slots_[open].length = s - slots_[open].init;
  const Byte* end = match(s, p);
  if (!end) slots_[open].length = kOpen;
  return end;
}

const PatternMatcher::Byte* PatternMatcher::back_reference(const Byte* s, Byte digit) {
  int index = digit - '1';
  if (index < 0 || index >= level_ || slots_[index].length == kOpen)
    fail(PatternError::Kind::malformed, "invalid capture index %" + std::to_string(index + 1));
  if (slots_[index].length == kPosition) return nullptr;  // never equal to text
  size_t length = static_cast<size_t>(slots_[index].length);
  if (static_cast<size_t>(subject_end_ - s) < length) return nullptr;
  step(length);
  return std::memcmp(slots_[index].init, s, length) == 0 ? s + length : nullptr;
}

// %bxy at s; p points at x.
const PatternMatcher::Byte* PatternMatcher::balanced(const Byte* s, const Byte* p) {
  if (pattern_end_ - p < 2) fail(PatternError::Kind::malformed, "malformed pattern (missing arguments to '%b')");
  if (s >= subject_end_ || *s != p[0]) return nullptr;
  Byte open = p[0], close = p[1];
  int depth = 1;
  const Byte* scanned = s;
  while (++s < subject_end_) {
    if (*s == close) {
      if (--depth == 0) break;
    } else if (*s == open) {
      ++depth;
    }
  }
  step(static_cast<uint64_t>(s - scanned));
  return s < subject_end_ ? s + 1 : nullptr;
}

// Longest run of the item first, then shorter ones until the rest matches.
const PatternMatcher::Byte* PatternMatcher::greedy(const Byte* s, const Byte* p, const Byte* ep) {
  size_t count = 0;
  while (single(s + count, p, ep)) ++count;
  step(count * item_cost(p, ep));
  for (;;) {
    if (const Byte* end = match(s + count, ep + 1)) return end;
    if (count == 0) return nullptr;
    --count;
  }
}

// Shortest run of the item first, one more each time the rest fails.
const PatternMatcher::Byte* PatternMatcher::lazy(const Byte* s, const Byte* p, const Byte* ep) {
  uint64_t cost = item_cost(p, ep);
  for (;;) {
    if (const Byte* end = match(s, ep + 1)) return end;
    step(cost);
    if (!single(s, p, ep)) return nullptr;
    ++s;
  }
}

// Matches the pattern from p at s; the end of the match or nullptr. Each
// continuation that needs no backtracking loops instead of recursing, so the
// depth (and "pattern too complex") is the standard matcher's.
const PatternMatcher::Byte* PatternMatcher::match(const Byte* s, const Byte* p) {
  if (depth_left_-- == 0) fail(PatternError::Kind::too_complex, "pattern too complex");
  for (;;) {
    step();
    if (p == pattern_end_) break;
    Byte next = p + 1 < pattern_end_ ? p[1] : 0;
    bool item = true;  // a single-character item with an optional suffix
    switch (*p) {
      case '(':
        if (next == ')') s = open_capture(s, p + 2, kPosition);
        else s = open_capture(s, p + 1, kOpen);
        item = false;
        break;
      case ')':
        s = close_capture(s, p + 1);
        item = false;
        break;
      case '$':
        if (p + 1 == pattern_end_) {
          if (s != subject_end_) s = nullptr;
          item = false;
        }
        break;
      case '%':
        if (next == 'b') {
          s = balanced(s, p + 2);
          if (s) {
            p += 4;
            continue;
          }
          item = false;
        } else if (next == 'f') {
          p += 2;
          if (p == pattern_end_ || *p != '[') fail(PatternError::Kind::malformed, "missing '[' after '%f' in pattern");
          const Byte* ep = item_end(p);
          int before = s == subject_ ? 0 : s[-1];
          int at = s < subject_end_ ? *s : 0;
          if (!in_set(before, p, ep - 1) && in_set(at, p, ep - 1)) {
            p = ep;
            continue;
          }
          s = nullptr;
          item = false;
        } else if (next >= '0' && next <= '9') {
          s = back_reference(s, next);
          if (s) {
            p += 2;
            continue;
          }
          item = false;
        }
        break;
      default: break;
    }
    if (!item) break;
    const Byte* ep = item_end(p);
    Byte suffix = ep < pattern_end_ ? *ep : 0;
    if (!single(s, p, ep)) {
      if (suffix == '*' || suffix == '?' || suffix == '-') {
        p = ep + 1;  // zero repetitions
        continue;
      }
      s = nullptr;
      break;
    }
    if (suffix == '?') {
      if (const Byte* end = match(s + 1, ep + 1)) {
        s = end;
        break;
      }
      p = ep + 1;
      continue;
    }
    if (suffix == '+') {
      s = greedy(s + 1, p, ep);
      break;
    }
    if (suffix == '*') {
      s = greedy(s, p, ep);
      break;
    }
    if (suffix == '-') {
      s = lazy(s, p, ep);
      break;
    }
    ++s;
    p = ep;
  }
  ++depth_left_;
  return s;
}

}  // namespace nshost
