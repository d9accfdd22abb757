#pragma once
// Helpers of the rooms integration tests (test_rooms_server.cpp,
// test_rooms_bad_input.cpp): a server running tests/scripts/rooms/server.lua
// and catalog requests through RoomPeers, each REQUIREing its answer.
#include <doctest/doctest.h>

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/rooms/codec.hpp"
#include "runtime/transport/wire.hpp"
#include "tests/support/clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/room_peers.hpp"

namespace nshost::test::rooms_util {

// A process's resident set (VmRSS), bytes; -1 when unreadable.
inline int64_t rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

using rooms::Codec;
using rooms::Message;
using rooms::Value;
using rooms::Writer;

using Payload = std::function<void(Writer&)>;

inline Server rooms_server(std::vector<std::string> extra = {}) {
  Server server = start_server(test_script("rooms/server.lua"), std::move(extra));
  REQUIRE(server.port > 0);
  return server;
}

inline wire::Hello hello_for(const std::string& codecs, const std::string& token = "", const std::string& project = "") {
  wire::Hello hello;
  hello.codecs = codecs;
  hello.auth_token = token;
  hello.project_id = project;
  return hello;
}

inline void welcome_all(RoomPeers& peers, const std::string& codecs = "msgpack,json") {
  REQUIRE(peers.handshake([&](size_t) { return hello_for(codecs); }));
  for (size_t i = 0; i < peers.size(); ++i) REQUIRE(peers.welcomed(i));
}

// {room_type = type [, options = <options>]}
inline Payload join_payload(const std::string& type, const Payload& options = {}) {
  return [type, options](Writer& w) {
    w.begin_map(options ? 2 : 1);
    w.key("room_type");
    w.string(type);
    if (options) {
      w.key("options");
      options(w);
    }
  };
}

inline Payload room_payload(int64_t room) {
  return [room](Writer& w) {
    w.begin_map(1);
    w.key("room");
    w.integer(room);
  };
}

// {room, type, data = <data>}
inline Payload message_payload(int64_t room, const std::string& type, const Payload& data) {
  return [room, type, data](Writer& w) {
    w.begin_map(3);
    w.key("room");
    w.integer(room);
    w.key("type");
    w.string(type);
    w.key("data");
    if (data) data(w);
    else w.nil();
  };
}

inline Message request(RoomPeers& peers, size_t i, const std::string& type, const Payload& payload) {
  uint32_t id = peers.send(i, type, payload);
  auto answer = peers.response(i, id, 10000);
  REQUIRE(answer);
  return *answer;
}

inline Message join(RoomPeers& peers, size_t i, const std::string& type, const Payload& options = {}) {
  return request(peers, i, "room.join_or_create", join_payload(type, options));
}

inline int64_t joined(const Message& answer) {
  INFO("reason: " << std::string(answer.payload.string_at("reason").value_or("")));
  REQUIRE(answer.payload.boolean_at("ok") == true);
  return answer.payload.integer_at("room").value_or(0);
}

inline std::string refusal(const Message& answer) {
  REQUIRE(answer.payload.boolean_at("ok") == false);
  return std::string(answer.payload.string_at("reason").value_or(""));
}

inline void say(RoomPeers& peers, size_t i, int64_t room, const std::string& type, const Payload& data = {},
         uint8_t channel = wire::kChannelRoomReliable) {
  peers.send(i, "room.message", message_payload(room, type, data), false, channel);
  peers.flush();
}

// The data of the next room.message of `type` peer i receives.
inline std::optional<Value> heard(RoomPeers& peers, size_t i, const std::string& type, int timeout_ms = 5000) {
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    auto m = peers.next(i, "room.message", static_cast<int>(std::max<int64_t>(1, deadline - now_ms())));
    if (!m) return std::nullopt;
    if (m->payload.string_at("type") == type) {
      const Value* data = m->payload.find("data");
      return data ? *data : Value{};
    }
  }
  return std::nullopt;
}

inline size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Pumps the peers while waiting for `needle` anywhere in the server's stdout.
inline bool server_printed(Server& server, RoomPeers& peers, const std::string& needle, int timeout_ms = 5000) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    if (server.process->stdout_text().find(needle) != std::string::npos) return true;
    if (now_ms() >= deadline) return false;
    peers.pump(2);
    server.process->wait_stdout("\x01", 3);  // reads what arrived
  }
}

inline bool server_logged(Server& server, RoomPeers& peers, const std::string& needle, int timeout_ms = 5000) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    if (server.process->stderr_text().find(needle) != std::string::npos) return true;
    if (now_ms() >= deadline) return false;
    peers.pump(2);
    server.process->wait_stderr("\x01", 3);
  }
}

// Counts the room.message "tick"s peer i receives in `window_ms`.
inline size_t ticks_heard(RoomPeers& peers, size_t i, int window_ms) {
  size_t ticks = 0;
  int64_t deadline = now_ms() + window_ms;
  while (now_ms() < deadline) {
    peers.pump(5);
    auto& inbox = peers.inbox(i);
    for (auto it = inbox.begin(); it != inbox.end();) {
      if (it->type == "room.message" && it->payload.string_at("type") == "tick") {
        ++ticks;
        it = inbox.erase(it);
      } else {
        ++it;
      }
    }
  }
  return ticks;
}

inline Payload ticker_options() {
  return [](Writer& w) {
    w.begin_map(1);
    w.key("ticker");
    w.boolean(true);
  };
}


}  // namespace nshost::test::rooms_util
