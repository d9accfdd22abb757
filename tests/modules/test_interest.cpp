// scripts/nshost/interest.lua: the grid's cells, radius, nearest-k limit,
// the viewer's own key, and the enter/leave sets fed to a view. Each case
// runs in a fresh server state; the Lua checks raise on a mismatch, so a
// case passes only when eval answers "ok".
#include <doctest/doctest.h>

#include <string>

#include "tests/support/roles.hpp"

using nshost::test::RoleFixture;

namespace {

std::string run(const std::string& code) {
  return RoleFixture::in_fresh_server("local interest = require('nshost.interest')\n" + code);
}

}  // namespace

TEST_CASE("interest: near finds the entities within the radius across cells, and only those") {
  CHECK(run(R"(
    local g = interest.grid({ cell = 10, radius = 15 })
    g:move("a", 0, 0)      -- the origin
    g:move("b", 14, 0)     -- inside, in the next cell
    g:move("c", 10, 11)    -- 14.9 away, diagonal cell
    g:move("d", 16, 0)     -- outside
    g:move("e", -9, -9)    -- inside, negative cell
    local got = g:near(0, 0)
    table.sort(got)
    assert(table.concat(got, ",") == "a,b,c,e", table.concat(got, ","))
  )") == "ok");
}

TEST_CASE("interest: max keeps the nearest, and moving an entity moves it between cells") {
  CHECK(run(R"(
    local g = interest.grid({ cell = 5, radius = 100, max = 2 })
    for i = 1, 10 do g:move(i, i * 3, 0) end
    local got = g:near(0, 0)
    assert(#got == 2 and got[1] == 1 and got[2] == 2, table.concat(got, ","))
    g:move(10, 1, 1)                       -- now the nearest
    got = g:near(0, 0)
    assert(got[1] == 10 and got[2] == 1, table.concat(got, ","))
    g:remove(10)
    got = g:near(0, 0)
    assert(got[1] == 1 and got[2] == 2, table.concat(got, ","))
    assert(g:position(10) == nil and select(1, g:position(3)) == 9)
  )") == "ok");
}

TEST_CASE("interest: refresh returns the entered and left sets, always shows the viewer itself, and drives a view") {
  CHECK(run(R"(
    local g = interest.grid({ cell = 10, radius = 20, max = 3 })
    local view = { keys = {} }
    function view:add(k) assert(not self.keys[k], 'added twice: ' .. k) self.keys[k] = true end
    function view:remove(k) assert(self.keys[k], 'removed unseen: ' .. k) self.keys[k] = nil end
    g:move("me", 0, 0)
    g:move("near", 5, 0)
    g:move("far", 100, 0)
    local entered, left = g:refresh("me", 0, 0, view)
    table.sort(entered)
    assert(table.concat(entered, ",") == "me,near" and #left == 0)
    assert(view.keys.me and view.keys.near and not view.keys.far)
    g:move("me", 95, 0)                    -- walks over to "far"
    entered, left = g:refresh("me", 95, 0, view)
    assert(table.concat(entered, ",") == "far", table.concat(entered, ","))
    assert(table.concat(left, ",") == "near", table.concat(left, ","))
    assert(view.keys.me and view.keys.far and not view.keys.near)
    entered, left = g:refresh("me", 95, 0, view)
    assert(#entered == 0 and #left == 0)   -- nothing changed: nothing sent
    -- the viewer is shown itself even when max is taken by nearer entities
    for i = 1, 5 do g:move(i, 95, 0) end
    g:refresh("me", 95, 0, view)
    assert(view.keys.me)
    g:forget("me")
    assert(#g:visible("me") == 0)
  )") == "ok");
}

TEST_CASE("interest: bad arguments raise a readable error") {
  std::string out = run("interest.grid({ cell = 0 })");
  CHECK(out.find("cell must be > 0") != std::string::npos);
  out = run("interest.grid({ cell = 1 }):move({}, 0, 0)");
  CHECK(out.find("keys are strings or integers") != std::string::npos);
  out = run("interest.grid({ cell = 1 }):move('a', 0/0, 0)");
  CHECK(out.find("x must be a finite number") != std::string::npos);
  out = run("interest.grid({ cell = 1, max = 0 })");
  CHECK(out.find("max must be an integer >= 1") != std::string::npos);
}
