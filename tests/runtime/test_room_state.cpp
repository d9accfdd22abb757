// The server's change tracking of room.state (runtime/rooms/room_state.hpp)
// on a plain Lua state: what each diff records (the nodes and keys a patch
// carries), and the frames it sends, decoded by a client-side StateTree with
// the codec: every frame's checksum must be the client tree's after applying
// it, and a client with a view must hold exactly the entities it admits.
#include <doctest/doctest.h>

#include <lua.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "runtime/rooms/room_state.hpp"
#include "runtime/state/state_codec.hpp"

using namespace nshost;
using namespace nshost::rooms;
using nshost::state::Key;

namespace {

// Captures what the room state queues, per session.
struct FakeLink : StateLink {
  std::map<uint64_t, std::vector<std::string>> frames;
  std::map<uint64_t, bool> down;
  int errors = 0;
  bool queue_state_packet(uint64_t session_id, ENetPacket* packet) override {
    if (down[session_id]) return false;
    frames[session_id].emplace_back(reinterpret_cast<const char*>(packet->data), packet->dataLength);
    // The room state frees a packet nobody took; one we took is ours.
    ++packet->referenceCount;
    held.push_back(packet);
    return true;
  }
  void on_state_error() override { ++errors; }
  std::vector<ENetPacket*> held;
  ~FakeLink() {
    for (ENetPacket* p : held)
      if (--p->referenceCount == 0) enet_packet_destroy(p);
  }
  std::vector<std::string> take(uint64_t session) {
    std::vector<std::string> out;
    out.swap(frames[session]);
    return out;
  }
};

struct Fixture {
  lua_State* L = luaL_newstate();
  FakeLink link;
  RoomState state{link, 7, "room test#7", 10000};
  int64_t now = 1000;

  Fixture() {
    luaL_openlibs(L);
    REQUIRE(luaL_dostring(L, "room = { state = {} }; return room") == LUA_OK);
    state.set_room_table_ref(luaL_ref(L, LUA_REGISTRYINDEX));
  }
  ~Fixture() { lua_close(L); }

  void run(const char* code) {
    if (luaL_dostring(L, code) != LUA_OK) FAIL(lua_tostring(L, -1));
  }
  // Runs `code`, diffs, and describes the changes: "ref:+key-key ref:..."
  // (nodes and keys sorted: the order of lua_next is not the test's).
  std::string diff(const char* code = "") {
    run(code);
    state.diff(L, now += 33);
    std::vector<std::string> nodes;
    for (size_t i = 0; i < state.change_count(); ++i) {
      const RoomState::NodeChange& c = state.change(i);
      std::vector<std::string> keys;
      for (const Key& k : c.set) keys.push_back("+" + describe(k));
      for (const Key& k : c.removed) keys.push_back("-" + describe(k));
      std::sort(keys.begin(), keys.end());
      std::string node = std::to_string(c.ref) + ":";
      for (const auto& k : keys) node += k;
      nodes.push_back(node);
    }
    std::sort(nodes.begin(), nodes.end());
    std::string out;
    for (const auto& n : nodes) out += (out.empty() ? "" : " ") + n;
    return out;
  }
  static std::string describe(const Key& k) {
    return k.kind == Key::Kind::integer ? std::to_string(k.integer) : k.string;
  }
  // The scalar at a path of refs/keys in the shadow, as text ("" if absent).
  std::string shadow(uint32_t ref, const Key& key) const {
    const auto* e = state.tree().find(ref, key);
    if (!e) return "";
    if (e->is_node()) return "node " + std::to_string(e->child);
    switch (e->scalar.kind) {
      case state::Scalar::Kind::boolean: return e->scalar.boolean ? "true" : "false";
      case state::Scalar::Kind::integer: return std::to_string(e->scalar.integer);
      case state::Scalar::Kind::number: return std::to_string(e->scalar.number);
      case state::Scalar::Kind::string: return "'" + e->scalar.string + "'";
    }
    return "";
  }
};

Key k(const char* s) { return Key::of(std::string_view(s)); }
Key k(int64_t i) { return Key::of(i); }

}  // namespace

TEST_CASE("room state: set, nested set, removal and re-add are tracked per node and key") {
  Fixture f;
  CHECK(f.diff() == "");
  CHECK(f.diff("room.state.round = 1") == "0:+round");
  CHECK(f.shadow(0, k("round")) == "1");
  // A new table is one change of its parent: its contents travel with it.
  CHECK(f.diff("room.state.players = { [7] = { x = 10, y = 20 } }") == "0:+players");
  CHECK(f.shadow(0, k("players")) == "node 1");
  CHECK(f.shadow(1, k(7)) == "node 2");
  CHECK(f.shadow(2, k("x")) == "10");
  // Nested set: only the entity's node and its key.
  CHECK(f.diff("room.state.players[7].x = 11") == "2:+x");
  CHECK(f.diff("room.state.players[7].y = nil") == "2:-y");
  CHECK(f.diff("room.state.players[8] = { x = 1 }") == "1:+8");
  CHECK(f.diff("room.state.players[7] = nil") == "1:-7");
  CHECK(f.shadow(1, k(7)) == "");
  // Re-added: a new node with a new ref (refs are never reused).
  CHECK(f.diff("room.state.players[7] = { x = 5 }") == "1:+7");
  CHECK(f.shadow(1, k(7)) == "node 4");
  // Two nodes in one diff, the removal of a whole collection.
  CHECK(f.diff("room.state.players[7].x = 6; room.state.players[8].x = 2; room.state.round = 2") ==
        "0:+round 3:+x 4:+x");
  CHECK(f.diff("room.state.players = nil") == "0:-players");
  CHECK(f.state.tree().node_count() == 1);
  CHECK(f.link.errors == 0);
}

TEST_CASE("room state: writing the same values sends nothing") {
  Fixture f;
  f.diff("room.state.p = { [1] = { x = 1.5, name = 'a long name past the small-string size', alive = true } }");
  CHECK(f.diff("room.state.p[1].x = 1.5; room.state.p[1].alive = true") == "");
  CHECK(f.diff("room.state.p[1].name = 'a long name past the small-string ' .. 'size'") == "");
  // 1 and 1.0 are different values in the untyped state (integer, float).
  CHECK(f.diff("room.state.p[1].x = 2") == "2:+x");
  CHECK(f.diff("room.state.p[1].x = 2.0") == "2:+x");
  CHECK(f.diff("room.state.p[1].x = 2.0") == "");
  // Float keys with an integral value are integer keys.
  CHECK(f.diff("room.state.p[1.0].alive = true") == "");
}

TEST_CASE("room state: a number read after a long string holds no copy of it") {
  // The diff reads values into one scratch scalar; a string it held once
  // must not be copied into every number entry changed after it.
  Fixture f;
  f.diff("room.state.chat = string.rep('x', 100000); room.state.n = {}");
  CHECK(f.diff("for i = 1, 50 do room.state.n[i] = i + 0.5 end") == "1:+1+10+11+12+13+14+15+16+17+18+19+2+20+21+22"
                                                                    "+23+24+25+26+27+28+29+3+30+31+32+33+34+35+36+37"
                                                                    "+38+39+4+40+41+42+43+44+45+46+47+48+49+5+50+6+7"
                                                                    "+8+9");
  for (int64_t i = 1; i <= 50; ++i) {
    const auto* e = f.state.tree().find(1, k(i));
    REQUIRE(e);
    CHECK(e->scalar.string.capacity() < 64);
  }
}

TEST_CASE("room state: a table replaced by another at the same key sends only the fields that changed") {
  Fixture f;
  f.diff("room.state.players = { [3] = { x = 1, y = 2, hp = 100, inv = { 'a', 'b' } } }");
  CHECK(f.diff("room.state.players[3] = { x = 1, y = 5, hp = 100, inv = { 'a', 'b' } }") == "2:+y");
  CHECK(f.diff("room.state.players[3] = { x = 1, y = 5, inv = { 'a' } }") == "2:-hp 3:-2");
  CHECK(f.diff("room.state.players = { [3] = { x = 1, y = 5, inv = { 'a' } } }") == "");
}

TEST_CASE("room state: keys and values that cannot be sent are script errors naming the path") {
  Fixture f;
  f.diff("room.state.t = {}");
  CHECK(f.diff("room.state.t[true] = 1") == "");
  CHECK(f.state.last_error().find("room.state.t: a key of type boolean") == 0);
  CHECK(f.diff("room.state.t[true] = nil; room.state.t[1.5] = 1") == "");
  CHECK(f.state.last_error().find("room.state.t: a key of type number") == 0);
  CHECK(f.diff("room.state.t[1.5] = nil; room.state.t.f = print") == "");
  CHECK(f.state.last_error() == "room.state.t.f: a function cannot be sent");
  CHECK(f.diff("room.state.t.f = nil; local c = {}; c.self = c; room.state.t['a b'] = c") == "1:+a b");
  CHECK(f.state.last_error().find("nested deeper than 64") != std::string::npos);
  CHECK(f.state.last_error().find("room.state.t[\"a b\"].self.self") == 0);
  // Logged (and counted for --strict) once per path per second: the second
  // bad key of room.state.t within that second only counts.
  CHECK(f.link.errors == 3);
  CHECK(f.state.stats().errors == 4);
}

TEST_CASE("room state: typed fields are validated, a value that does not fit is not sent") {
  Fixture f;
  auto root = std::make_unique<state::Type>();
  // Built as room.define_state builds it (bindings/room_state.cpp).
  root->kind = state::Type::Kind::structure;
  auto player = std::make_unique<state::Type>();
  player->kind = state::Type::Kind::structure;
  auto scalar = [](state::Type::Kind kind) {
    auto t = std::make_unique<state::Type>();
    t->kind = kind;
    return t;
  };
  player->fields.emplace_back("x", scalar(state::Type::Kind::f32));
  player->fields.emplace_back("hp", scalar(state::Type::Kind::u8));
  player->fields.emplace_back("name", scalar(state::Type::Kind::string));
  auto players = std::make_unique<state::Type>();
  players->kind = state::Type::Kind::map;
  players->value = std::move(player);
  root->fields.emplace_back("players", std::move(players));
  root->fields.emplace_back("round", scalar(state::Type::Kind::u16));
  std::string error;
  REQUIRE(f.state.define(std::move(root), error));

  CHECK(f.diff("room.state.players = { [1] = { x = 1.1, hp = 300, name = 'a' } }") == "0:+players");
  CHECK(f.state.last_error() == "room.state.players[1].hp: 300 does not fit u8");
  CHECK(f.shadow(2, k("hp")) == "");
  CHECK(f.shadow(2, k("x")) == std::to_string(static_cast<double>(1.1f)));  // f32 canonical form
  // x = 1.1 again rounds to the same f32: nothing to send.
  CHECK(f.diff("room.state.players[1].hp = 100") == "2:+hp");
  CHECK(f.diff("room.state.players[1].x = 1.1") == "");
  // A refused value keeps the old one (clients keep it too).
  CHECK(f.diff("room.state.players[1].hp = -1") == "");
  CHECK(f.shadow(2, k("hp")) == "100");
  CHECK(f.diff("room.state.players[1].hp = 'full'") == "");
  CHECK(f.state.last_error() == "room.state.players[1].hp: a string is not a u8");
  CHECK(f.diff("room.state.players[1].hp = 99.0") == "2:+hp");  // an integral float fits
  CHECK(f.shadow(2, k("hp")) == "99");
  CHECK(f.diff("room.state.players[1].score = 3") == "");
  CHECK(f.state.last_error() == "room.state.players[1].score: no such field in room.define_state's schema");
  CHECK(f.diff("room.state.players[1].score = nil room.state.round = {}") == "");
  CHECK(f.state.last_error() == "room.state.round: a table is not a u16");
  CHECK(f.diff("room.state.round = 3") == "0:+round");
  // The schema is fixed once a diff ran.
  CHECK_FALSE(f.state.define(std::make_unique<state::Type>(), error));
}

namespace {

// A client's mirror built from the frames, as a client does.
struct Mirror {
  std::unique_ptr<state::Schema> schema;
  std::unique_ptr<state::StateTree> tree;
  uint16_t seq = 0;
  size_t snapshots = 0, patches = 0;
  std::string error;
  void apply(const std::string& frame) {
    state::FrameHeader h;
    std::string_view schema_bytes, ops;
    std::string why;
    std::vector<state::Change> changes;
    if (!state::read_header(frame, h, schema_bytes, ops, why)) return fail("header: " + why);
    if (h.kind == state::FrameKind::snapshot) {
      auto decoded = state::Schema::decode(schema_bytes, why);
      if (!decoded) return fail("schema: " + why);
      tree.reset();
      schema = std::make_unique<state::Schema>(std::move(*decoded));
      tree = std::make_unique<state::StateTree>(*schema);
      ++snapshots;
    } else {
      if (!tree) return fail("patch before snapshot");
      if (h.seq != static_cast<uint16_t>(seq + 1)) return fail("gap");
      ++patches;
    }
    if (!state::apply_ops(*tree, ops, changes, why)) return fail("ops: " + why);
    if (tree->checksum() != h.checksum) return fail("checksum");
    seq = h.seq;
  }
  void fail(std::string why) {
    if (error.empty()) error = std::move(why);
  }
  void take(FakeLink& link, uint64_t session) {
    for (const std::string& f : link.take(session)) apply(f);
  }
  bool has(std::initializer_list<Key> path) const {
    uint32_t ref = 0;
    const state::StateTree::Entry* e = nullptr;
    for (const Key& key : path) {
      if (e) ref = e->child;
      e = tree ? tree->find(ref, key) : nullptr;
      if (!e) return false;
    }
    return true;
  }
};

}  // namespace

TEST_CASE("room state: every frame applies on a client's tree with its checksum, views get their entities only") {
  Fixture f;
  f.run("room.state.players = { [1] = { x = 1, inv = { 'a' } }, [2] = { x = 2 }, [3] = { x = 3 } } room.state.round = 1");
  Mirror all_a, all_b, view;
  for (uint64_t s : {10, 11, 12}) f.state.add_client(s, f.now);
  f.state.diff(f.L, f.now);
  f.state.send(f.now);
  f.state.view_ids(f.L, 12)->insert(Key::of(int64_t{2}));
  for (uint64_t s : {10, 11, 12}) f.state.start_client(s, f.now);
  all_a.take(f.link, 10);
  all_b.take(f.link, 11);
  view.take(f.link, 12);
  CHECK(all_a.error == "");
  CHECK(view.error == "");
  CHECK(all_a.has({k("players"), k(3), k("inv")}) == false);
  CHECK(all_a.has({k("players"), k(1), k("inv"), k(1)}));
  CHECK(view.has({k("players"), k(2), k("x")}));
  CHECK_FALSE(view.has({k("players"), k(1)}));
  CHECK(view.has({k("round")}));

  auto step = [&](const char* code, bool same = true) {
    f.run(code);
    f.state.diff(f.L, f.now += 33);
    f.state.send(f.now);
    auto a = f.link.take(10), b = f.link.take(11);
    if (same) CHECK(a == b);  // one shared packet: the same bytes
    for (auto& fr : a) all_a.apply(fr);
    for (auto& fr : b) all_b.apply(fr);
    view.take(f.link, 12);
    CHECK(all_a.error == "");
    CHECK(all_b.error == "");
    CHECK(view.error == "");
  };
  step("room.state.players[1].x = 5 room.state.players[2].x = 6");
  CHECK(all_a.tree->sum() == f.state.tree().sum());
  size_t view_patches = view.patches;
  step("room.state.players[1].x = 7");  // not in the view: nothing for it
  CHECK(view.patches == view_patches);
  // Enter: sent whole; leave: removed.
  f.state.view_ids(f.L, 12)->insert(Key::of(int64_t{1}));
  step("");
  CHECK(view.has({k("players"), k(1), k("inv"), k(1)}));
  f.state.view_ids(f.L, 12)->erase(Key::of(int64_t{2}));
  step("room.state.players[2].x = 8");
  CHECK_FALSE(view.has({k("players"), k(2)}));
  // New and removed entities, a replaced collection, a new collection.
  step("room.state.players[4] = { x = 4 } room.state.players[1] = nil room.state.bullets = { [1] = { x = 0 } }");
  CHECK_FALSE(view.has({k("players"), k(4)}));
  CHECK(view.has({k("bullets"), k(1), k("x")}));  // key 1 is in its id set
  CHECK(all_a.has({k("players"), k(4), k("x")}));
  step("room.state.players = { [2] = { x = 8 }, [3] = { x = 3 } } room.state.round = 2");
  CHECK(all_a.tree->sum() == f.state.tree().sum());
  CHECK(view.has({k("round")}));
  // A client whose link is down gets a snapshot when it is back.
  f.link.down[11] = true;
  step("room.state.round = 3", false);
  f.link.down[11] = false;
  step("room.state.round = 4", false);
  CHECK(all_b.snapshots == 2);
  CHECK(all_b.tree->sum() == f.state.tree().sum());
  step("room.state.round = 5");  // back in step: the shared packet again
  CHECK(all_b.tree->sum() == f.state.tree().sum());
}

TEST_CASE("room state: a function view admits per entity per patch, its client's checksum stays exact") {
  Fixture f;
  f.run("room.state.players = { a = { x = 1 }, b = { x = 9 } } room.state.items = { [1] = { x = 2 }, n = 3 }");
  f.state.add_client(20, f.now);
  f.state.add_client(21, f.now);
  f.state.diff(f.L, f.now);
  f.state.send(f.now);
  f.run("function near(collection, key, entity) return entity.x < 5 end");
  lua_getglobal(f.L, "near");
  REQUIRE(f.state.set_view_function(f.L, 20, luaL_ref(f.L, LUA_REGISTRYINDEX)));
  std::vector<uint64_t> fn_clients;
  auto evaluate = [&] {
    f.state.view_function_clients(fn_clients);
    for (uint64_t s : fn_clients) {
      lua_pushcfunction(f.L, [](lua_State* L) {
        auto* st = static_cast<RoomState*>(lua_touserdata(L, 1));
        st->evaluate_view(L, static_cast<uint64_t>(lua_tointeger(L, 2)));
        return 0;
      });
      lua_pushlightuserdata(f.L, &f.state);
      lua_pushinteger(f.L, static_cast<lua_Integer>(s));
      REQUIRE(lua_pcall(f.L, 2, 0, 0) == LUA_OK);
    }
  };
  f.state.start_client(21, f.now);
  Mirror near, all;
  all.take(f.link, 21);
  // Its first snapshot comes after the view ran (as Room::release_joiner does).
  f.state.start_client(20, f.now);  // not evaluated yet: no entity before its first frame
  near.take(f.link, 20);
  CHECK(near.error == "");
  auto step = [&](const char* code) {
    f.run(code);
    f.state.diff(f.L, f.now += 33);
    evaluate();
    f.state.send(f.now);
    near.take(f.link, 20);
    all.take(f.link, 21);
    CHECK(near.error == "");
    CHECK(all.error == "");
  };
  step("");
  CHECK(near.has({k("players"), k("a")}));
  CHECK_FALSE(near.has({k("players"), k("b")}));
  CHECK(near.has({k("items"), k(1), k("x")}));
  CHECK(near.has({k("items"), k("n")}));  // a collection's scalar always passes
  step("room.state.players.b.x = 4 room.state.players.a.x = 6");
  CHECK(near.has({k("players"), k("b"), k("x")}));
  CHECK_FALSE(near.has({k("players"), k("a")}));
  step("room.state.players.c = { x = 0 } room.state.players.b = nil room.state.items.n = 4");
  CHECK(near.has({k("players"), k("c")}));
  CHECK_FALSE(near.has({k("players"), k("b")}));
  // A view function that raises: the client keeps its last admission.
  f.run("function near() error('boom') end");
  lua_getglobal(f.L, "near");
  REQUIRE(f.state.set_view_function(f.L, 20, luaL_ref(f.L, LUA_REGISTRYINDEX)));
  f.run("room.state.players.c.x = 1 room.state.players.d = { x = 1 }");
  f.state.diff(f.L, f.now += 33);
  f.state.view_function_clients(fn_clients);
  lua_pushcfunction(f.L, [](lua_State* L) {
    static_cast<RoomState*>(lua_touserdata(L, 1))->evaluate_view(L, 20);
    return 0;
  });
  lua_pushlightuserdata(f.L, &f.state);
  CHECK(lua_pcall(f.L, 1, 0, 0) != LUA_OK);
  lua_pop(f.L, 1);
  f.state.send(f.now);
  near.take(f.link, 20);
  CHECK(near.error == "");
  CHECK(near.has({k("players"), k("c")}));
  CHECK_FALSE(near.has({k("players"), k("d")}));
  // No view again: a snapshot of everything.
  REQUIRE(f.state.set_view_function(f.L, 20, LUA_NOREF));
  step("");
  CHECK(near.snapshots == 2);
  CHECK(near.has({k("players"), k("d")}));
  CHECK(near.tree->sum() == f.state.tree().sum());
}
