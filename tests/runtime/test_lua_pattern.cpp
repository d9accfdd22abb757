// The matcher of runtime/script/lua_pattern.hpp on its own: offsets and captures,
// the step budget, and the stop callback. Lua-visible behaviour is compared
// with Lua's own in tests/bindings/test_string_patterns.cpp.
#include <doctest/doctest.h>

#include <string>

#include "runtime/script/lua_pattern.hpp"

using namespace nshost;

namespace {

PatternError::Kind error_kind(std::string_view subject, std::string_view pattern, const PatternBudget& budget,
                              std::string& message) {
  PatternMatcher matcher(subject, pattern, budget);
  size_t begin = 0;
  try {
    matcher.search(0, false, begin);
  } catch (const PatternError& e) {
    message = e.what();
    return e.kind();
  }
  message.clear();
  return PatternError::Kind::malformed;
}

}  // namespace

TEST_CASE("lua pattern: search returns the match span and the captures as offsets") {
  std::string subject = "key = value";
  PatternMatcher matcher(subject, "(%w+)%s*=%s*()(%w+)", PatternBudget{});
  size_t begin = 99;
  size_t end = matcher.search(0, false, begin);
  CHECK(begin == 0);
  CHECK(end == subject.size());
  REQUIRE(matcher.capture_count() == 3);
  PatternMatcher::Capture key = matcher.capture(0, begin, end);
  CHECK(key.kind == PatternMatcher::Capture::Kind::text);
  CHECK(subject.substr(key.begin, key.length) == "key");
  PatternMatcher::Capture at = matcher.capture(1, begin, end);
  CHECK(at.kind == PatternMatcher::Capture::Kind::position);
  CHECK(at.begin == 6);
  CHECK(subject.substr(matcher.capture(2, begin, end).begin, 5) == "value");
  CHECK_THROWS_WITH_AS(matcher.capture(3, begin, end), "invalid capture index %4", PatternError);

  PatternMatcher whole(subject, "%a+$", PatternBudget{});
  end = whole.search(0, false, begin);
  CHECK(begin == 6);
  CHECK(whole.capture_count() == 0);
  PatternMatcher::Capture all = whole.capture(0, begin, end);
  CHECK(subject.substr(all.begin, all.length) == "value");

  PatternMatcher anchored(subject, "value", PatternBudget{});
  CHECK(anchored.search(0, true, begin) == PatternMatcher::npos);
  CHECK(anchored.search(6, true, begin) == subject.size());
  CHECK(anchored.match_at(subject.size()) == PatternMatcher::npos);
}

TEST_CASE("lua pattern: the step budget stops a backtracking match and says so") {
  std::string subject(5000, 'a');
  std::string message;
  PatternBudget budget;
  budget.max_steps = 1'000'000;
  CHECK(error_kind(subject, ".-.-.-.-b", budget, message) == PatternError::Kind::over_budget);
  CHECK(message == "pattern too complex (over 1000000 steps in one call)");
  // A tiny budget is honoured too (below the poll interval).
  budget.max_steps = 10;
  CHECK(error_kind(subject, "a-b", budget, message) == PatternError::Kind::over_budget);
  CHECK(message == "pattern too complex (over 10 steps in one call)");

  PatternMatcher matcher(subject, "a-b", budget);
  CHECK_THROWS_AS(matcher.match_at(0), PatternError);
  CHECK(matcher.steps_used() == 11);
  // A new budget for the next call.
  budget.max_steps = 0;
  matcher.reset_budget(budget);
  CHECK(matcher.match_at(0) == PatternMatcher::npos);
  CHECK(matcher.steps_used() > 5000);
}

TEST_CASE("lua pattern: long sets, %b scans and back-references cost steps by the byte") {
  std::string subject(10'000, 'q');
  PatternBudget none;
  PatternMatcher plain(subject, "[q]*", none);
  REQUIRE(plain.match_at(0) == subject.size());
  uint64_t short_set = plain.steps_used();
  std::string long_set = "[" + std::string(4096, 'z') + "q]*";
  PatternMatcher wide(subject, long_set, none);
  REQUIRE(wide.match_at(0) == subject.size());
  CHECK(wide.steps_used() > short_set * 100);

  std::string nested = "(" + std::string(50'000, 'x') + ")";
  PatternMatcher balance(nested, "%b()", none);
  REQUIRE(balance.match_at(0) == nested.size());
  CHECK(balance.steps_used() >= 50'000);

  std::string twice = std::string(40'000, 'r') + std::string(40'000, 'r');
  std::string repeated = "(" + std::string(40'000, '.') + ")%1$";  // the matcher borrows it
  PatternMatcher reference(twice, repeated, none);
  REQUIRE(reference.match_at(0) == twice.size());
  CHECK(reference.steps_used() >= 80'000);
}

TEST_CASE("lua pattern: the stop callback is polled every kPollSteps steps and ends the match") {
  struct Poll {
    int calls = 0;
    int stop_at = 3;
  } poll;
  PatternBudget budget;
  budget.should_stop = [](void* context) {
    auto* p = static_cast<Poll*>(context);
    return ++p->calls >= p->stop_at;
  };
  budget.context = &poll;
  std::string subject(5000, 'a');
  PatternMatcher matcher(subject, ".-.-.-.-b", budget);
  size_t begin = 0;
  try {
    matcher.search(0, false, begin);
    FAIL("the match was not stopped");
  } catch (const PatternError& e) {
    CHECK(e.kind() == PatternError::Kind::stopped);
  }
  CHECK(poll.calls == 3);
  CHECK(matcher.steps_used() == 3 * PatternMatcher::kPollSteps);
}

TEST_CASE("lua pattern: malformed patterns raise Lua's messages") {
  PatternBudget none;
  const std::pair<const char*, const char*> kMalformed[] = {
      {"%", "malformed pattern (ends with '%')"},
      {"[a", "malformed pattern (missing ']')"},
      {"[]", "malformed pattern (missing ']')"},
      {"%b", "malformed pattern (missing arguments to '%b')"},
      {"%fx", "missing '[' after '%f' in pattern"},
      {")", "invalid pattern capture"},
      {"%1", "invalid capture index %1"},
      {"(()%1)", "invalid capture index %1"},
  };
  for (auto [pattern, text] : kMalformed) {
    CAPTURE(pattern);
    std::string message;
    CHECK(error_kind("abc", pattern, none, message) == PatternError::Kind::malformed);
    CHECK(message == text);
  }
  std::string too_many;
  for (int i = 0; i < 33; ++i) too_many += "()";
  std::string message;
  CHECK(error_kind("abc", too_many, none, message) == PatternError::Kind::malformed);
  CHECK(message == "too many captures");
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += "a?";
  CHECK(error_kind(std::string(300, 'a'), deep, none, message) == PatternError::Kind::too_complex);
  CHECK(message == "pattern too complex");
}
