#include "tests/support/roles.hpp"

#include <doctest/doctest.h>
#include <uv.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace nshost::test {

RoleFixture::RoleFixture() {
  uv_loop_init(&loop_);
  char pattern[] = "/tmp/nshost-test-XXXXXX";
  dir_ = mkdtemp(pattern);
}

RoleFixture::~RoleFixture() {
  client_.reset();
  server_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks
  uv_loop_close(&loop_);
  std::filesystem::remove_all(dir_);
}

std::string RoleFixture::write_file(const std::string& name, const std::string& text) {
  std::filesystem::path path = std::filesystem::path(dir_) / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path.string();
}

ServerRole& RoleFixture::start_server(const std::string& script_text, Options options) {
  options.role = Role::server;
  options.port = 0;
  options.script = write_file("server.lua", script_text);
  server_ = std::make_unique<ServerRole>(&loop_, options);
  std::string error;
  REQUIRE_MESSAGE(server_->start(error), error);
  return *server_;
}

ClientRole& RoleFixture::start_client(const std::string& script_text, Options options) {
  REQUIRE(server_);
  options.role = Role::client;
  options.connect_url = "nshost://127.0.0.1:" + std::to_string(server_->port());
  options.script = write_file("client.lua", script_text);
  client_ = std::make_unique<ClientRole>(&loop_, options);
  std::string error;
  REQUIRE_MESSAGE(client_->start(error), error);
  return *client_;
}

bool RoleFixture::step_until(const std::function<bool()>& done, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    uv_run(&loop_, UV_RUN_ONCE);
  }
  return true;
}

std::string RoleFixture::in_fresh_server(const std::string& code, Options options) {
  RoleFixture f;
  ServerRole& server = f.start_server("", std::move(options));
  return eval(server.script()->state(), code);
}

std::string RoleFixture::eval(lua_State* L, const std::string& code) {
  int base = lua_gettop(L);
  if (luaL_loadstring(L, code.c_str()) != LUA_OK || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
    std::string message = std::string("error: ") + lua_tostring(L, -1);
    lua_settop(L, base);
    return message;
  }
  std::string out = "ok";
  for (int i = base + 1; i <= lua_gettop(L); ++i) {
    out += i == base + 1 ? ": " : ", ";
    out += luaL_tolstring(L, i, nullptr);
    lua_pop(L, 1);
  }
  lua_settop(L, base);
  return out;
}

std::string RoleFixture::in_handler(ServerRole& server, const std::string& code) {
  lua_State* L = server.script()->state();
  std::string wrapped =
      "result = nil function server.shutdown() result = table.pack(pcall(function() " + code + " end)) end";
  REQUIRE(eval(L, wrapped) == "ok");
  server.script()->invoke("shutdown");
  return eval(L, "return table.unpack(result, 1, result.n)");
}

}  // namespace nshost::test
