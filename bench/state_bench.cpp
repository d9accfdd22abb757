// The server's side of state sync without the network: 128 rooms of the
// arena bench (bench/rooms/arena_state.lua's schema and moves, 8 players and
// 8 clients each), every room ticked, diffed and sent each tick, packets
// freed unsent. Prints the median over 5 runs of the ns per player-tick
// spent in the room's Lua, in RoomState::diff and in RoomState::send.
//   build/nshost_state_bench [ticks]
#include <enet/enet.h>
#include <lua.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "runtime/rooms/room_state.hpp"

using namespace nshost;

namespace {

constexpr int kRooms = 128;
constexpr int kPlayers = 8;
constexpr int kRuns = 5;

// Takes every packet and frees it after the tick, as ENet would once sent.
struct DropLink : rooms::StateLink {
  std::vector<ENetPacket*> held;
  bool queue_state_packet(uint64_t, ENetPacket* packet) override {
    ++packet->referenceCount;
    held.push_back(packet);
    return true;
  }
  void on_state_error() override { std::fprintf(stderr, "state error\n"); }
  void release() {
    for (ENetPacket* p : held)
      if (--p->referenceCount == 0) enet_packet_destroy(p);
    held.clear();
  }
  ~DropLink() override { release(); }
};

std::unique_ptr<state::Type> scalar(state::Type::Kind kind) {
  auto t = std::make_unique<state::Type>();
  t->kind = kind;
  return t;
}

// { players = { map = { x = "f32", y = "f32", hp = "u8", score = "u16" } } }
std::unique_ptr<state::Type> arena_type() {
  auto player = std::make_unique<state::Type>();
  player->kind = state::Type::Kind::structure;
  player->fields.emplace_back("hp", scalar(state::Type::Kind::u8));
  player->fields.emplace_back("score", scalar(state::Type::Kind::u16));
  player->fields.emplace_back("x", scalar(state::Type::Kind::f32));
  player->fields.emplace_back("y", scalar(state::Type::Kind::f32));
  auto players = std::make_unique<state::Type>();
  players->kind = state::Type::Kind::map;
  players->value = std::move(player);
  auto root = std::make_unique<state::Type>();
  root->kind = state::Type::Kind::structure;
  root->fields.emplace_back("players", std::move(players));
  return root;
}

// The room's Lua: arena_state.lua's tick with fixed inputs.
const char* kRoomLua = R"(
local players, inputs = {}, {}
local room = { state = { players = players } }
for id = 1, 8 do
  players[id * 7919] = { x = id * 100.5, y = id * 50.25, hp = 100, score = 0 }
  inputs[id * 7919] = { math.random() * 2 - 1, math.random() * 2 - 1 }
end
local tick = 0
local function step()
  tick = tick + 1
  for id, p in pairs(players) do
    local i = inputs[id]
    p.x = (p.x + i[1] * 5 + 1000) % 1000
    p.y = (p.y + i[2] * 5 + 1000) % 1000
    if tick % 30 == 0 then p.score = p.score + 1 end
    if tick % 10 == 0 then p.hp = (p.hp + 7) % 101 end
  end
end
return room, step
)";

struct Room {
  std::unique_ptr<rooms::RoomState> state;
  int step_ref = LUA_NOREF;
  uint64_t seq = 0;  // of the last frame each client got (all alike)
};

}  // namespace

int main(int argc, char** argv) {
  const int ticks = argc > 1 ? std::max(1, std::atoi(argv[1])) : 300;
  if (enet_initialize() != 0) return 1;
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  DropLink link;
  std::vector<Room> rooms(kRooms);
  int64_t now_ms = 1000;
  for (int r = 0; r < kRooms; ++r) {
    Room& room = rooms[r];
    room.state = std::make_unique<rooms::RoomState>(link, r + 1, "bench", 10000);
    std::string error;
    if (!room.state->define(arena_type(), error)) {
      std::fprintf(stderr, "define: %s\n", error.c_str());
      return 1;
    }
    if (luaL_loadstring(L, kRoomLua) != LUA_OK || lua_pcall(L, 0, 2, 0) != LUA_OK) {
      std::fprintf(stderr, "%s\n", lua_tostring(L, -1));
      return 1;
    }
    room.step_ref = luaL_ref(L, LUA_REGISTRYINDEX);        // [room]
    room.state->set_room_table_ref(luaL_ref(L, LUA_REGISTRYINDEX));  // []
    for (int c = 1; c <= kPlayers; ++c) {
      room.state->add_client(c, now_ms);
      room.state->start_client(c, now_ms);
    }
    room.state->diff(L, now_ms);
    room.state->send(now_ms);
  }
  link.release();

  using Clock = std::chrono::steady_clock;
  std::vector<double> lua_ns, diff_ns, send_ns;
  for (int run = 0; run < kRuns; ++run) {
    Clock::duration in_lua{}, in_diff{}, in_send{};
    for (int t = 0; t < ticks; ++t) {
      now_ms += 33;
      for (Room& room : rooms) {
        auto t0 = Clock::now();
        lua_rawgeti(L, LUA_REGISTRYINDEX, room.step_ref);
        lua_call(L, 0, 0);
        auto t1 = Clock::now();
        room.state->diff(L, now_ms);
        auto t2 = Clock::now();
        room.state->send(now_ms);
        auto t3 = Clock::now();
        in_lua += t1 - t0;
        in_diff += t2 - t1;
        in_send += t3 - t2;
        // Every client acks each patch, as the bots do.
        ++room.seq;
        for (int c = 1; c <= kPlayers; ++c)
          room.state->on_ack(c, static_cast<uint16_t>(room.seq), room.state->tree().checksum(), now_ms);
      }
      link.release();
    }
    const double per = 1.0 / (double(ticks) * kRooms * kPlayers);
    lua_ns.push_back(std::chrono::duration<double, std::nano>(in_lua).count() * per);
    diff_ns.push_back(std::chrono::duration<double, std::nano>(in_diff).count() * per);
    send_ns.push_back(std::chrono::duration<double, std::nano>(in_send).count() * per);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("ns per player-tick (median of %d runs of %d ticks, %d rooms of %d): lua %.1f diff %.1f send %.1f\n",
              kRuns, ticks, kRooms, kPlayers, median(lua_ns), median(diff_ns), median(send_ns));
  uint64_t divergences = 0, stalled = 0, errors = 0;
  for (const Room& room : rooms) {
    divergences += room.state->stats().divergences;
    stalled += room.state->stats().stalled;
    errors += room.state->stats().errors;
  }
  if (divergences || stalled || errors) {
    std::fprintf(stderr, "divergences %llu, stalled %llu, errors %llu\n", (unsigned long long)divergences,
                 (unsigned long long)stalled, (unsigned long long)errors);
    return 1;
  }
  rooms.clear();
  lua_close(L);
  enet_deinitialize();
  return 0;
}
