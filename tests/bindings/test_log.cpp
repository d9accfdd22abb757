#include <doctest/doctest.h>

#include "runtime/core/log.hpp"
#include "tests/support/capture.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("log: each level writes one tagged line - arguments are joined with tostring") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  std::string text;
  {
    test::StderrCapture capture;
    CHECK(RoleFixture::eval(L, "log.warn('moved', 3, nil, true, {} ~= nil)") == "ok");
    CHECK(RoleFixture::eval(L, "log.error('bad')") == "ok");
    text = capture.text();
  }
  CHECK(text == "nshost[server] warn: moved 3 nil true true\nnshost[server] error: bad\n");
}

TEST_CASE("log: lines below the log level are dropped") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  LogLevel saved = log_level();
  set_log_level(LogLevel::warn);
  std::string text;
  {
    test::StderrCapture capture;
    RoleFixture::eval(L, "log.debug('d') log.info('i') log.warn('w')");
    text = capture.text();
  }
  set_log_level(saved);
  CHECK(text == "nshost[server] warn: w\n");
}
