#pragma once
// Shared by the rooms client tests (test_rooms_client.cpp: against a RawServer;
// test_rooms_client_sessions.cpp: resume, bots, end to end): the test
// client's Lua prelude and the catalog answers a RawServer plays.
#include <doctest/doctest.h>
#include <signal.h>
#include <functional>
#include <memory>
#include <set>
#include "runtime/rooms/client_rooms.hpp"
#include "runtime/rooms/codec.hpp"
#include "tests/support/cli.hpp"
#include "tests/support/clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_server.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using namespace nshost::test;
using rooms::Codec;
using rooms::Writer;

namespace nshost::test::rooms_client {

// What every test client script starts with: events noted in order,
// values rendered deterministically (sorted keys, floats marked).
inline constexpr const char* kPrelude = R"lua(
events = {}
function note(s) events[#events + 1] = s end
function render(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if math.type(v) == "float" then return ("%.17gf"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. render(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
function client.connect() note("connect") end
function client.disconnect(reason) note("disconnect " .. reason) end
function client.lost() note("lost") end
function client.resumed() note("resumed") end
function client.room_message(r, t, d)
  last_data = d
  note("message " .. tostring(r) .. " " .. t .. " " .. render(d))
end
function client.room_left(r, reason) note("left " .. tostring(r) .. " " .. reason) end
-- A callback that notes what it got, under a name.
function answer(name)
  return function(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
      local v = (select(i, ...))
      parts[i] = type(v) == "userdata" and tostring(v) or render(v)
    end
    note(name .. " " .. table.concat(parts, " "))
    if type((...)) == "userdata" then room = (...) end
  end
end
)lua";

// A ClientRole in this process joined to `server`, running kPrelude + `script`.
class Client {
 public:
  Client(RawServer& server, const std::string& script, Options options = {}) {
    options.role = Role::client;
    options.connect_url = server.url();
    options.script = fixture_.write_file("client.lua", std::string(kPrelude) + script);
    role_ = std::make_unique<ClientRole>(fixture_.loop(), options);
    std::string error;
    REQUIRE_MESSAGE(role_->start(error), error);
  }
  ~Client() {
    role_.reset();  // before the fixture runs the loop for the close callbacks
  }

  ClientRole& role() { return *role_; }
  rooms::ClientRooms& rooms() { return *role_->rooms(); }
  lua_State* L() { return role_->script()->state(); }
  std::string eval(const std::string& code) { return RoleFixture::eval(L(), code); }
  bool step_until(const std::function<bool()>& done, int timeout_ms = 5000) {
    return fixture_.step_until(done, timeout_ms);
  }
  // Steps the loop for `ms` (to let what should not happen show up).
  void step_for(int ms) {
    int64_t deadline = now_ms() + ms;
    fixture_.step_until([&] { return now_ms() >= deadline; }, ms + 1000);
  }
  void join() { REQUIRE(step_until([&] { return role_->joined(); })); }
  // Runs `code` inside a client handler (client.poke); pcall's results as eval gives them.
  std::string in_handler(const std::string& code) {
    REQUIRE(eval("function client.poke() result = table.pack(pcall(function() " + code + " end)) end") == "ok");
    call_script_function("poke");
    return eval("return table.unpack(result, 1, result.n)");
  }
  // Calls client.<name>() as a handler (not one the host calls, so not invoke()).
  void call_script_function(const char* name) {
    role_->script()->call_back(name, [name](lua_State* L) {
      lua_getglobal(L, "client");
      lua_getfield(L, -1, name);
      lua_call(L, 0, 0);
      return 1;
    });
  }
  std::string events() {
    std::string all = eval("return table.concat(events, '|')");
    REQUIRE(all.rfind("ok: ", 0) == 0);
    return all.substr(4);
  }
  size_t event_count() {
    std::string n = eval("return #events");
    return static_cast<size_t>(std::stoul(n.substr(4)));
  }
  bool wait_events(size_t n, int timeout_ms = 5000) {
    return step_until([&] { return event_count() >= n; }, timeout_ms);
  }

 private:
  RoleFixture fixture_;
  std::unique_ptr<ClientRole> role_;
};

// The next catalog request from the client, decoded; REQUIREs one in time.
struct Request {
  int peer = -1;
  uint8_t channel = 0;
  rooms::Message message;
};
inline Request next_request(RawServer& server, Codec codec, Client* client = nullptr) {
  std::optional<RawServer::Packet> packet;
  if (client) {
    // The in-process client's loop must run for it to send.
    client->step_until([&] { return (packet = server.wait_packet(1)).has_value(); });
  } else {
    packet = server.wait_packet(5000);
  }
  REQUIRE(packet);
  Request request;
  request.peer = packet->peer;
  request.channel = packet->channel;
  std::string error;
  REQUIRE_MESSAGE(rooms::decode_message(codec, packet->bytes, request.message, error), error);
  return request;
}

inline std::string join_ok(Codec codec, uint32_t id, int64_t room, const std::string& type) {
  Writer w(codec);
  rooms::begin_message(w, "rpc.response", id);
  w.begin_map(3);
  w.key("ok");
  w.boolean(true);
  w.key("room");
  w.integer(room);
  w.key("room_type");
  w.string(type);
  return w.take();
}

inline std::string refused(Codec codec, uint32_t id, const std::string& reason) {
  Writer w(codec);
  rooms::begin_message(w, "rpc.response", id);
  w.begin_map(2);
  w.key("ok");
  w.boolean(false);
  w.key("reason");
  w.string(reason);
  return w.take();
}

inline std::string plain_ok(Codec codec, uint32_t id) {
  Writer w(codec);
  rooms::begin_message(w, "rpc.response", id);
  w.begin_map(1);
  w.key("ok");
  w.boolean(true);
  return w.take();
}

inline std::string room_left(Codec codec, int64_t room, const std::string& reason) {
  Writer w(codec);
  rooms::begin_message(w, "room.left");
  w.begin_map(2);
  w.key("room");
  w.integer(room);
  w.key("reason");
  w.string(reason);
  return w.take();
}

// A room.message whose data is {x = 1, y = 2.5, s = "hi", list = {1, 2, 3}}.
inline std::string room_message(Codec codec, int64_t room, const std::string& type) {
  Writer w(codec);
  rooms::begin_message(w, "room.message");
  w.begin_map(3);
  w.key("room");
  w.integer(room);
  w.key("type");
  w.string(type);
  w.key("data");
  w.begin_map(4);
  w.key("x");
  w.integer(1);
  w.key("y");
  w.number(2.5);
  w.key("s");
  w.string("hi");
  w.key("list");
  w.begin_array(3);
  for (int i = 1; i <= 3; ++i) w.integer(i);
  return w.take();
}

inline std::string room_bytes(Codec codec, int64_t room, const std::string& type, const std::string& bytes) {
  Writer w(codec);
  rooms::begin_message(w, "room.message.bytes");
  w.begin_map(3);
  w.key("room");
  w.integer(room);
  w.key("type");
  w.string(type);
  w.key(codec == Codec::json ? "data_b64" : "data");
  w.bytes(bytes);
  return w.take();
}

// Joins "arena" as room `room` from inside a handler; returns the request's id.
inline void join_arena(Client& client, RawServer& server, Codec codec, int64_t room) {
  size_t before = client.event_count();
  REQUIRE(client.in_handler("return rooms.join_or_create('arena', nil, answer('joined'))") == "ok: true, true");
  Request request = next_request(server, codec, &client);
  REQUIRE(request.message.type == "room.join_or_create");
  server.send(request.peer, wire::kChannelRoomReliable, join_ok(codec, request.message.id, room, "arena"));
  REQUIRE(client.wait_events(before + 1));
}

}  // namespace nshost::test::rooms_client
