// The client's state mirror (runtime/rooms/client_state.hpp) applying frames
// into a real client script's Lua state: a fresh script context per test
// (RoleFixture), frames written by a ServerTree with the codec's writers,
// and the state.ack / state.resync frames the mirror sends recorded byte by
// byte.
#include <doctest/doctest.h>

#include <random>

#include "runtime/rooms/client_state.hpp"
#include "runtime/script/script_host.hpp"
#include "tests/support/roles.hpp"
#include "tests/support/state_frames.hpp"

using namespace nshost;
using nshost::rooms::ClientStates;
using nshost::state::FrameKind;
using nshost::state::Key;
using nshost::state::Scalar;
using nshost::state::Type;
using nshost::test::RoleFixture;
using nshost::test::ServerTree;

namespace {

constexpr int64_t kRoom = 5;

// What the test script notes at each client.room_state.
constexpr const char* kMirrorPrelude = R"lua(
calls = 0
function client.room_state(r, state, changes)
  calls = calls + 1
  current = state
  last_changes = render_state(changes)
  room_id = r.id
end
)lua";

class Harness final : public ClientStates::Owner {
 public:
  explicit Harness(const std::string& script = "", Options options = {}) {
    fixture_.start_server("");
    client_ = &fixture_.start_client(std::string(test::kStateRender) + kMirrorPrelude + script, options);
    L = client_->script()->state();
    lua_newtable(L);
    lua_pushinteger(L, kRoom);
    lua_setfield(L, -2, "id");
    handle_ = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ~Harness() { states.forget_all(); }

  ScriptHost* state_script() override { return client_->script(); }
  int state_room_handle(int64_t room) override { return room == kRoom ? handle_ : LUA_NOREF; }
  bool send_state(std::string_view bytes, bool reliable) override {
    sent.emplace_back(reliable, std::string(bytes));
    return true;
  }

  std::string eval(const std::string& code) { return RoleFixture::eval(L, code); }
  std::string mirror() { return eval("return render_state(current)"); }
  int calls() { return std::stoi(eval("return calls").substr(4)); }
  ScriptHost& script() { return *client_->script(); }

  lua_State* L = nullptr;
  std::vector<std::pair<bool, std::string>> sent;  // (reliable, bytes)

 private:
  RoleFixture fixture_;
  ClientRole* client_ = nullptr;
  int handle_ = LUA_NOREF;

 public:
  ClientStates states{*this, "test"};  // after the fixture: released before the script closes
};

std::string ack_bytes(uint16_t seq, uint32_t checksum) {
  std::string b = {char(0x03), char(kRoom), char(seq & 0xff), char(seq >> 8)};
  for (int i = 0; i < 4; ++i) b += char((checksum >> (8 * i)) & 0xff);
  return b;
}
std::string resync_bytes(uint8_t reason) { return {char(0x04), char(kRoom), char(reason)}; }

std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    out += char(v ? (b | 0x80) : b);
  } while (v);
  return out;
}

// A player node with a few fields of every scalar kind.
uint32_t add_player(ServerTree& s, uint32_t players, int64_t id) {
  uint32_t p = s.node(players, Key::of(id));
  s.set(p, Key::of("x"), Scalar::of_number(1.5 * double(id)));
  s.set(p, Key::of("hp"), Scalar::of_int(100));
  s.set(p, Key::of("name"), Scalar::of_string("p" + std::to_string(id)));
  s.set(p, Key::of("alive"), Scalar::of_bool(true));
  return p;
}

std::unique_ptr<Type> scalar_type(Type::Kind kind) {
  auto t = std::make_unique<Type>();
  t->kind = kind;
  return t;
}

// { players = { map = { hp = "u8", x = "f32" } }, round = "u16" }
state::Schema arena_schema() {
  auto player = std::make_unique<Type>();
  player->kind = Type::Kind::structure;
  player->fields.emplace_back("hp", scalar_type(Type::Kind::u8));
  player->fields.emplace_back("x", scalar_type(Type::Kind::f32));
  auto players = std::make_unique<Type>();
  players->kind = Type::Kind::map;
  players->value = std::move(player);
  auto root = std::make_unique<Type>();
  root->kind = Type::Kind::structure;
  root->fields.emplace_back("players", std::move(players));
  root->fields.emplace_back("round", scalar_type(Type::Kind::u16));
  return state::Schema(std::move(root));
}

}  // namespace

TEST_CASE("state mirror: a snapshot becomes r.state, equal to the server's tree, and is acked at once") {
  Harness h;
  ServerTree s(kRoom);
  uint32_t players = s.node(0, Key::of("players"));
  add_player(s, players, 1);
  add_player(s, players, 2);
  s.set(0, Key::of("round"), Scalar::of_int(3));
  s.node(0, Key::of("empty"));
  s.set_seq(41);
  h.states.on_frame(s.snapshot());
  CHECK(h.calls() == 1);
  CHECK(h.mirror() == "ok: " + s.render());
  CHECK(h.eval("return last_changes, room_id") == "ok: {1={}}, 5");
  CHECK(h.eval("return math.type(current.players[1].hp), math.type(current.players[2].x)") == "ok: integer, float");
  REQUIRE(h.sent.size() == 1);
  CHECK_FALSE(h.sent[0].first);  // unreliable: channel 4
  CHECK(h.sent[0].second == ack_bytes(41, s.tree().checksum()));
  CHECK(h.states.stats(kRoom).snapshots == 1);

  // A second snapshot is a new table tree (scripts read through r.state).
  REQUIRE(h.eval("old = current") == "ok");
  s.erase(0, Key::of("round"));
  h.states.on_frame(s.snapshot());
  CHECK(h.mirror() == "ok: " + s.render());
  CHECK(h.eval("return rawequal(old, current), old.round") == "ok: false, 3");
}

TEST_CASE("state mirror: a typed snapshot and its patches mirror f32, u8 and u16 fields") {
  Harness h;
  ServerTree s(kRoom, arena_schema());
  uint32_t players = s.node(0, Key::of("players"));
  uint32_t p = s.node(players, Key::of("ann"));
  s.set(p, Key::of("hp"), Scalar::of_int(250));
  s.set(p, Key::of("x"), Scalar::of_number(static_cast<double>(0.1f)));
  s.set(0, Key::of("round"), Scalar::of_int(65535));
  h.states.on_frame(s.snapshot());
  CHECK(h.mirror() == "ok: " + s.render());
  s.set(p, Key::of("x"), Scalar::of_number(static_cast<double>(2.75f)));
  s.erase(p, Key::of("hp"));
  h.states.on_frame(s.patch());
  CHECK(h.mirror() == "ok: " + s.render());
  CHECK(h.eval("return current.players.ann.x, current.players.ann.hp") == "ok: 2.75, nil");
  CHECK(h.states.stats(kRoom).patches == 1);
}

TEST_CASE("state mirror: patches applied in order keep r.state equal to the server's, changes lists the paths") {
  Harness h;
  ServerTree s(kRoom);
  uint32_t players = s.node(0, Key::of("players"));
  uint32_t p1 = add_player(s, players, 1);
  h.states.on_frame(s.snapshot());
  REQUIRE(h.mirror() == "ok: " + s.render());
  REQUIRE(h.eval("players_table = current.players") == "ok");

  s.set(p1, Key::of("x"), Scalar::of_number(2.5));
  h.states.on_frame(s.patch());
  CHECK(h.mirror() == "ok: " + s.render());
  CHECK(h.eval("return last_changes") == "ok: {1={1=\"players\",2=1,3=\"x\"}}");

  // A new node: its path is listed, not its contents.
  uint32_t p2 = add_player(s, players, 2);
  uint32_t inv = s.node(p2, Key::of("inv"));
  s.set(inv, Key::of(1), Scalar::of_string("sword"));
  s.set(0, Key::of("round"), Scalar::of_int(1));
  h.states.on_frame(s.patch());
  CHECK(h.mirror() == "ok: " + s.render());
  CHECK(h.eval("return last_changes") == "ok: {1={1=\"round\"},2={1=\"players\",2=2}}");

  // Removal of a node, a node replaced by a scalar, a scalar by a node.
  s.erase(players, Key::of(1));
  s.set(p2, Key::of("inv"), Scalar::of_bool(false));
  uint32_t flag = s.node(0, Key::of("round"));
  s.set(flag, Key::of("n"), Scalar::of_int(2));
  h.states.on_frame(s.patch());
  CHECK(h.mirror() == "ok: " + s.render());
  // Tables of nodes that stay are kept (a script may hold them).
  CHECK(h.eval("return rawequal(players_table, current.players)") == "ok: true");

  // Many small patches, every one checked.
  for (int i = 0; i < 50; ++i) {
    s.set(p2, Key::of("hp"), Scalar::of_int(100 - i));
    if (i % 7 == 0) s.set(flag, Key::of(std::to_string(i)), Scalar::of_int(i));
    if (i % 11 == 0) s.erase(flag, Key::of(std::to_string(i - 7)));
    h.states.on_frame(s.patch());
    REQUIRE(h.mirror() == "ok: " + s.render());
  }
  ClientStates::Stats st = h.states.stats(kRoom);
  CHECK(st.patches == 53);
  CHECK(st.resyncs == 0);
  // Acked: the snapshot and the first patch after it at once, later ones
  // at most every 100 ms (this harness runs no timer: no more acks).
  REQUIRE(h.sent.size() == 2);
  CHECK(h.sent[1].second.substr(0, 4) == ack_bytes(1, 0).substr(0, 4));
}

TEST_CASE("state mirror: a bad checksum, a gap, malformed ops each send one resync, r.state stays until the snapshot") {
  struct Case {
    const char* name;
    uint8_t reason;
  };
  for (Case c : {Case{"checksum", 2}, Case{"gap", 1}, Case{"decode", 3}, Case{"half-valid", 3}}) {
    CAPTURE(c.name);
    Harness h;
    ServerTree s(kRoom);
    uint32_t players = s.node(0, Key::of("players"));
    uint32_t p1 = add_player(s, players, 1);
    h.states.on_frame(s.snapshot());
    s.set(p1, Key::of("hp"), Scalar::of_int(90));
    h.states.on_frame(s.patch());
    std::string before = h.mirror();
    REQUIRE(before == "ok: " + s.render());
    int calls = h.calls();
    size_t sent = h.sent.size();

    s.set(p1, Key::of("hp"), Scalar::of_int(80));
    add_player(s, players, 2);
    std::string name = c.name;
    if (name == "checksum") {
      h.states.on_frame(s.patch(0x00010000));
    } else if (name == "gap") {
      s.patch();  // lost
      s.set(p1, Key::of("hp"), Scalar::of_int(70));
      h.states.on_frame(s.patch());
    } else if (name == "decode") {
      s.patch_ops();
      h.states.on_frame(s.frame(FrameKind::patch, uint16_t(s.seq() + 1), std::string("\x00\x01\x00\x7f", 4)));
      s.set_seq(uint16_t(s.seq() + 1));
    } else {
      // A valid update, then one for a node that does not exist: the tree
      // took the first before the error, the script must not see it.
      std::string ops = s.patch_ops() + std::string("\x63\x00", 2);
      s.set_seq(uint16_t(s.seq() + 1));
      h.states.on_frame(s.frame(FrameKind::patch, s.seq(), ops));
    }
    REQUIRE(h.sent.size() == sent + 1);
    CHECK(h.sent.back().first);  // reliable: channel 3
    CHECK(h.sent.back().second == resync_bytes(c.reason));
    CHECK(h.mirror() == before);
    CHECK(h.calls() == calls);
    ClientStates::Stats st = h.states.stats(kRoom);
    CHECK(st.resyncs == 1);
    CHECK(st.checksum_mismatches == (name == "checksum" ? 1u : 0u));
    CHECK(st.gaps == (name == "gap" ? 1u : 0u));
    CHECK(st.decode_errors == (name == "decode" || name == "half-valid" ? 1u : 0u));

    // Patches while waiting are ignored: no second resync, nothing visible.
    for (int i = 0; i < 3; ++i) {
      s.set(p1, Key::of("hp"), Scalar::of_int(60 - i));
      h.states.on_frame(s.patch());
    }
    CHECK(h.sent.size() == sent + 1);
    CHECK(h.mirror() == before);
    CHECK(h.states.stats(kRoom).ignored == 3);

    // The snapshot brings it back in step, and patches apply again.
    h.states.on_frame(s.snapshot());
    CHECK(h.mirror() == "ok: " + s.render());
    CHECK(h.calls() == calls + 1);
    s.set(p1, Key::of("hp"), Scalar::of_int(1));
    h.states.on_frame(s.patch());
    CHECK(h.mirror() == "ok: " + s.render());
    CHECK(h.sent.back().second == ack_bytes(s.seq(), s.tree().checksum()));
  }
}

TEST_CASE("state mirror: a hostile server (huge counts, deep nesting, unknown refs, garbage) cannot crash it or grow it") {
  Harness h;
  ServerTree s(kRoom);
  uint32_t players = s.node(0, Key::of("players"));
  add_player(s, players, 1);
  h.states.on_frame(s.snapshot());
  std::string good = h.mirror();
  REQUIRE(good == "ok: " + s.render());

  auto snapshot_with = [&](const std::string& ops) {
    state::FrameHeader hd;
    hd.kind = FrameKind::snapshot;
    hd.room = kRoom;
    std::string out;
    state::Schema any;
    state::write_header(hd, out, &any);
    return out + ops;
  };
  std::vector<std::string> hostile;
  hostile.push_back(snapshot_with(std::string("\x00", 1) + varint(uint64_t(1) << 62)));  // a count of 2^62
  hostile.push_back(snapshot_with(std::string("\x00\x01\x00", 3) + varint(uint64_t(1) << 40)));  // a key of 2^40 bytes
  hostile.push_back(snapshot_with(std::string("\x00\x01\x00\x01k\x04", 6) + varint(uint64_t(1) << 40)));  // a value of 2^40 bytes
  hostile.push_back(snapshot_with(std::string("\x63\x00", 2)));                                  // an unknown ref
  hostile.push_back(snapshot_with(std::string("\x00\x01\x00\x01k\x05\x00\x00", 8)));             // a new node with ref 0 (in use)
  hostile.push_back(snapshot_with(std::string(12, '\xff')));                                     // an overlong varint
  {
    std::string deep = std::string("\x00", 1);  // ref 0, then 200 nested tables
    for (uint32_t i = 1; i <= 200; ++i) deep += std::string("\x01\x00\x01k\x05", 5) + varint(i);
    deep += std::string("\x00", 1);
    hostile.push_back(snapshot_with(deep));
  }
  hostile.push_back(std::string("\x01", 1));                                   // a header cut short
  hostile.push_back(std::string("\x01\x05\x00\x00\x00\x00\x00\x00\x05\x0c\xff\xff\xff\x0f", 14));  // a schema claiming 2^32 fields
  size_t before = h.sent.size();
  for (const std::string& frame : hostile) h.states.on_frame(frame);
  CHECK(h.mirror() == good);
  ClientStates::Stats st = h.states.stats(kRoom);
  CHECK(st.snapshots == 1);
  CHECK(st.decode_errors >= 8);
  // Every failed snapshot asks again; a frame without a readable header is only logged.
  CHECK(h.sent.size() - before == st.resyncs);

  // Past the tree's budgets: refused whole.
  h.states.set_tree_budget(64, 1 << 16);
  ServerTree big(kRoom);
  uint32_t many = big.node(0, Key::of("many"));
  for (int i = 0; i < 100; ++i) big.node(many, Key::of(i));
  h.states.on_frame(big.snapshot());
  CHECK(h.mirror() == good);
  ServerTree wide(kRoom);
  wide.set(0, Key::of("blob"), Scalar::of_string(std::string(70000, 'b')));
  h.states.on_frame(wide.snapshot());
  CHECK(h.mirror() == good);

  // Random corruption of valid frames, bounded in count.
  std::mt19937 rng(14);
  std::string snap = s.snapshot();
  uint32_t p2 = add_player(s, players, 2);
  s.set(p2, Key::of("deep"), Scalar::of_int(1));
  std::string patch = s.patch();
  for (int i = 0; i < 3000; ++i) {
    std::string f = i % 2 ? snap : patch;
    int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) f[rng() % f.size()] = char(rng());
    if (rng() % 3 == 0) f.resize(rng() % f.size());
    if (!f.empty()) f[0] = i % 2 ? 0x01 : 0x02;
    h.states.on_frame(f);
  }
  // Still serving the script, within its budgets, and back in step on a good snapshot.
  h.states.set_tree_budget(1 << 20, 64u << 20);
  h.states.on_frame(s.snapshot());
  CHECK(h.mirror() == "ok: " + s.render());
  CHECK(h.eval("return 1 + 1") == "ok: 2");
  CHECK(h.script().memory_used() < (8u << 20));
  CHECK(h.states.mirror_count() == 1);
}

TEST_CASE("state mirror: a snapshot past --memory-limit leaves r.state as it was and the script running") {
  Options options;
  options.memory_limit_bytes = 3u << 20;
  Harness h("", options);
  ServerTree s(kRoom);
  uint32_t players = s.node(0, Key::of("players"));
  add_player(s, players, 1);
  h.states.on_frame(s.snapshot());
  std::string good = h.mirror();
  REQUIRE(good == "ok: " + s.render());
  ServerTree huge(kRoom);
  uint32_t many = huge.node(0, Key::of("many"));
  for (int b = 0; b < 300; ++b) {
    uint32_t bucket = huge.node(many, Key::of(b));
    for (int i = 0; i < 200; ++i) huge.set(huge.node(bucket, Key::of(i)), Key::of("v"), Scalar::of_int(i));
  }
  h.states.on_frame(huge.snapshot());
  CHECK(h.mirror() == good);
  CHECK(h.states.stats(kRoom).snapshots == 1);
  CHECK(h.eval("collectgarbage() return 1 + 1") == "ok: 2");
  CHECK(h.script().memory_used() <= (3u << 20));
  // The next snapshot that fits is taken.
  s.set(0, Key::of("after"), Scalar::of_bool(true));
  h.states.on_frame(s.snapshot());
  CHECK(h.mirror() == "ok: " + s.render());
}

TEST_CASE("state mirror: a handler taking 2 parameters gets no changes list, a vararg one gets it") {
  Harness h(R"lua(
    function client.room_state(r, state) calls = calls + 1 current = state end
  )lua");
  ServerTree s(kRoom);
  s.set(0, Key::of("a"), Scalar::of_int(1));
  h.states.on_frame(s.snapshot());
  CHECK(h.calls() == 1);
  CHECK(h.mirror() == "ok: {a=1}");
  REQUIRE(h.eval("function client.room_state(...) calls = calls + 1 n_args = select('#', ...)"
                 " last_changes = render_state((select(3, ...))) end") == "ok");
  s.set(0, Key::of("a"), Scalar::of_int(2));
  h.states.on_frame(s.patch());
  CHECK(h.eval("return n_args, last_changes") == "ok: 3, {1={1=\"a\"}}");
}
