#include <doctest/doctest.h>

#include <chrono>
#include <lua.hpp>
#include <string>
#include <vector>

#include "runtime/rooms/codec.hpp"

using namespace nshost::rooms;

namespace {

constexpr Codec kCodecs[] = {Codec::msgpack, Codec::json};

// A fresh state per test, with the standard libraries for the values' builders.
struct LuaState {
  lua_State* L = luaL_newstate();
  LuaState() {
    luaL_openlibs(L);
    // Same type, same math.type, same value (NaN equals NaN, -0.0 differs
    // from 0.0), recursively.
    const char* deep_eq = R"(
      function deep_eq(a, b)
        if type(a) ~= type(b) then return false end
        if type(a) == "number" then
          if math.type(a) ~= math.type(b) then return false end
          if a ~= a then return b ~= b end
          return a == b and (a ~= 0 or 1 / a == 1 / b)
        end
        if type(a) ~= "table" then return a == b end
        for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
        for k in pairs(b) do if a[k] == nil then return false end end
        return true
      end)";
    REQUIRE(luaL_dostring(L, deep_eq) == LUA_OK);
  }
  ~LuaState() { lua_close(L); }
  LuaState(const LuaState&) = delete;
  LuaState& operator=(const LuaState&) = delete;

  // Pushes the value of a Lua expression.
  void push(const std::string& expression) {
    if (luaL_dostring(L, ("return " + expression).c_str()) != LUA_OK) FAIL(lua_tostring(L, -1));
  }
  bool equal_top_two() {
    lua_getglobal(L, "deep_eq");
    lua_insert(L, -3);
    REQUIRE(lua_pcall(L, 2, 1, 0) == LUA_OK);
    bool eq = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return eq;
  }
};

std::string encode_lua(Codec codec, LuaState& lua, const std::string& expression, std::string& error) {
  lua.push(expression);
  Writer w(codec);
  bool ok = w.lua_value(lua.L, -1, error);
  lua_pop(lua.L, 1);
  return ok ? w.take() : std::string();
}

Value decoded(Codec codec, std::string_view bytes) {
  Value v;
  std::string error;
  REQUIRE_MESSAGE(decode(codec, bytes, v, error), error);
  return v;
}

std::string encoded(Codec codec, const Value& v) {
  Writer w(codec);
  w.value(v);
  REQUIRE_MESSAGE(w.ok(), w.error());
  return w.take();
}

Value str(std::string s) {
  Value v;
  v.kind = Value::Kind::string;
  v.string = std::move(s);
  return v;
}

Value integer(int64_t i) {
  Value v;
  v.kind = Value::Kind::integer;
  v.integer = i;
  return v;
}

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s += static_cast<char>(b);
  return s;
}

std::string nested_lua(int depth) {
  std::string e;
  for (int i = 0; i < depth; ++i) e += "{";
  for (int i = 0; i < depth; ++i) e += "}";
  return e;
}

}  // namespace

TEST_CASE("rooms codec: every Lua value kind round-trips through both codecs, integers and floats kept apart") {
  const std::vector<std::string> values = {
      "nil", "true", "false", "0", "-1", "127", "128", "-33", "65536", "math.maxinteger", "math.mininteger",
      "0.5", "1.0", "-0.0", "0.1", "1e300", "-2.5e-300", "1e16", "3.0e15", "'hello'", "''", "'caf\\u{e9} \\\"q\\\" \\n\\t\\1'",
      "string.rep('x', 70000)", "{}", "{1, 2, 3}", "{1.0, 2, 'three', true}", "{a = 1, b = {c = {1.5, 'x'}}}",
      "{1, {2, {3, {}}}}", "{list = {10, 20}, map = {k = 'v'}, empty = {}}", "{a = {'x', 'y'}, n = {}}"};
  for (Codec codec : kCodecs) {
    for (const std::string& expression : values) {
      CAPTURE(codec_name(codec));
      CAPTURE(expression);
      LuaState lua;
      std::string error;
      std::string wire = encode_lua(codec, lua, expression, error);
      REQUIRE_MESSAGE(!wire.empty(), error);
      Value v = decoded(codec, wire);
      push_value(lua.L, v);
      lua.push(expression);
      CHECK(lua.equal_top_two());
      CHECK(lua_gettop(lua.L) == 0);
    }
  }
}

TEST_CASE("rooms codec: msgpack strings are byte-exact and carry integer map keys, NaN and infinities") {
  LuaState lua;
  for (std::string expression : {"'a\\0b\\255\\254c'", "{['\\0\\1'] = '\\200'}", "{[1] = 'a', [3] = 'c'}",
                                 "{[-5] = 1, [0] = 2}", "{[1] = 'a', [2] = 'b', n = 2}", "{x = math.huge, y = -math.huge}", "{0/0}"}) {
    CAPTURE(expression);
    std::string error;
    std::string wire = encode_lua(Codec::msgpack, lua, expression, error);
    REQUIRE_MESSAGE(!wire.empty(), error);
    push_value(lua.L, decoded(Codec::msgpack, wire));
    lua.push(expression);
    CHECK(lua.equal_top_two());
  }
}

TEST_CASE("rooms codec: json writes floats so they read back as floats, integer keys as strings") {
  LuaState lua;
  std::string error;
  CHECK(encode_lua(Codec::json, lua, "1.0", error) == "1.0");
  CHECK(encode_lua(Codec::json, lua, "-0.0", error) == "-0.0");
  CHECK(encode_lua(Codec::json, lua, "0.5", error) == "0.5");
  CHECK(encode_lua(Codec::json, lua, "1e100", error) == "1e+100");
  CHECK(encode_lua(Codec::json, lua, "42", error) == "42");
  CHECK(encode_lua(Codec::json, lua, "'\\0\"\\\\\\31'", error) == "\"\\u0000\\\"\\\\\\u001f\"");
  CHECK(decoded(Codec::json, "1.0").kind == Value::Kind::number);
  CHECK(decoded(Codec::json, "1").kind == Value::Kind::integer);
  CHECK(decoded(Codec::json, "-0").kind == Value::Kind::integer);
  // A map's integer keys travel as strings.
  std::string wire = encode_lua(Codec::json, lua, "{[1] = 'a', [3] = 'c'}", error);
  Value v = decoded(Codec::json, wire);
  REQUIRE(v.kind == Value::Kind::map);
  CHECK(v.string_at("1") == "a");
  CHECK(v.string_at("3") == "c");
}

TEST_CASE("rooms codec: empty table is an empty map, keys exactly 1..n an array, anything else a map") {
  LuaState lua;
  std::string error;
  CHECK(encode_lua(Codec::msgpack, lua, "{}", error) == "\x80");
  CHECK(encode_lua(Codec::json, lua, "{}", error) == "{}");
  CHECK(encode_lua(Codec::msgpack, lua, "{7, 8}", error) == bytes({0x92, 0x07, 0x08}));
  CHECK(encode_lua(Codec::json, lua, "{7, 8}", error) == "[7,8]");
  CHECK(encode_lua(Codec::json, lua, "{[2] = 8, [1] = 7}", error) == "[7,8]");
  CHECK(static_cast<unsigned char>(encode_lua(Codec::msgpack, lua, "{[1] = 7, [3] = 8}", error)[0]) == 0x82);
  CHECK(static_cast<unsigned char>(encode_lua(Codec::msgpack, lua, "{[0] = 7}", error)[0]) == 0x81);
  CHECK(encode_lua(Codec::json, lua, "{7, x = 1}", error).front() == '{');
  CHECK(encode_lua(Codec::json, lua, "{{}, {1}}", error) == "[{},[1]]");
}

TEST_CASE("rooms codec: Value trees round-trip through Writer::value, bytes as bin or base64") {
  Value map;
  map.kind = Value::Kind::map;
  map.entries.emplace_back(str("n"), integer(INT64_MIN));
  map.entries.emplace_back(integer(5), str(std::string("\0\xff", 2)));
  Value list;
  list.kind = Value::Kind::array;
  list.items.push_back(Value{});
  list.items.push_back(integer(INT64_MAX));
  map.entries.emplace_back(str("list"), list);
  CHECK(decoded(Codec::msgpack, encoded(Codec::msgpack, map)) == map);

  Writer w(Codec::msgpack);
  w.bytes(std::string("\0\x01\x02", 3));
  std::string bin = w.take();
  CHECK(static_cast<unsigned char>(bin[0]) == 0xc4);  // bin 8
  CHECK(decoded(Codec::msgpack, bin) == str(std::string("\0\x01\x02", 3)));
  Writer j(Codec::json);
  j.bytes(std::string("\0\x01\x02\xff", 4));
  std::string text = j.take();
  CHECK(text == "\"AAEC/w==\"");
  CHECK(decode_base64(decoded(Codec::json, text).string) == std::string("\0\x01\x02\xff", 4));
}

TEST_CASE("rooms codec: base64 is RFC 4648 and refuses non-canonical text") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    CHECK(decode_base64(encode_base64(s)) == s);
  }
  CHECK(encode_base64("foobar") == "Zm9vYmFy");
  CHECK(encode_base64("fo") == "Zm8=");
  CHECK_FALSE(decode_base64("Zm8"));
  CHECK_FALSE(decode_base64("Zm9=").has_value());  // non-zero bits under the padding
  CHECK_FALSE(decode_base64("Z=8=").has_value());
  CHECK_FALSE(decode_base64("Zm8*").has_value());
  CHECK_FALSE(decode_base64("Zm==Zm8=").has_value());
}

TEST_CASE("rooms codec: Lua values that cannot travel fail with the path, without raising or moving the stack") {
  struct Case {
    const char* expression;
    const char* error;
  };
  const std::string deep = nested_lua(65);
  const Case cases[] = {
      {"(function() local t = {a = {}}; t.a.b = t; return t end)()", "cycle at data.a.b"},
      {"(function() local t = {}; t[1] = t; return t end)()", "cycle at data[1]"},
      {"{f = print}", "function at data.f"},
      {"{1, {2, io.stdout}}", "userdata at data[2][2]"},
      {"{co = coroutine.create(print)}", "thread at data.co"},
      {"{[true] = 1}", "boolean key in table at data"},
      {"{[1.5] = 1}", "float key in table at data"},
      {deep.c_str(), "nested deeper than 64"},
  };
  for (Codec codec : kCodecs) {
    for (const Case& c : cases) {
      CAPTURE(codec_name(codec));
      CAPTURE(c.expression);
      LuaState lua;
      lua.push(c.expression);
      lua_pushinteger(lua.L, 99);  // the value is not on top: index it by position
      Writer w(codec);
      std::string error;
      CHECK_FALSE(w.lua_value(lua.L, 1, error));
      CHECK(error.find(c.error) != std::string::npos);
      CHECK(lua_gettop(lua.L) == 2);
      CHECK_FALSE(w.ok());
      CHECK(w.error() == error);
    }
  }
  // A value shared twice (no cycle) is fine; 64 levels are accepted.
  for (Codec codec : kCodecs) {
    LuaState lua;
    std::string error;
    CHECK_FALSE(encode_lua(codec, lua, "(function() local s = {1}; return {s, s} end)()", error).empty());
    CHECK_FALSE(encode_lua(codec, lua, nested_lua(64), error).empty());
  }
}

TEST_CASE("rooms codec: json refuses invalid UTF-8 and numbers it cannot write") {
  LuaState lua;
  std::string error;
  for (std::string bad : {"'\\255'", "'\\xc0\\x80'", "'\\xed\\xa0\\x80'", "'\\xf4\\x90\\x80\\x80'", "'abc\\xe2\\x82'"}) {
    CAPTURE(bad);
    CHECK(encode_lua(Codec::json, lua, "{s = " + bad + "}", error).empty());
    CHECK(error == "json: string at data.s is not valid UTF-8");
    CHECK(encode_lua(Codec::json, lua, "{[" + bad + "] = 1}", error).empty());
    CHECK(error.find("json: key at data.") == 0);
    CHECK_FALSE(encode_lua(Codec::msgpack, lua, "{s = " + bad + "}", error).empty());
  }
  CHECK(encode_lua(Codec::json, lua, "{'\\u{10FFFF}\\u{7FF}\\u{FFFF}'}", error) == "[\"\xf4\x8f\xbf\xbf\xdf\xbf\xef\xbf\xbf\"]");
  CHECK(encode_lua(Codec::json, lua, "{x = 0/0}", error).empty());
  CHECK(error == "json: number at data.x is not finite (nan or inf)");
  CHECK(encode_lua(Codec::json, lua, "{x = {math.huge}}", error).empty());
  CHECK(error == "json: number at data.x[1] is not finite (nan or inf)");
  // Writer calls fail the writer too.
  Writer w(Codec::json);
  w.begin_map(1);
  w.boolean(true);
  CHECK_FALSE(w.ok());
  CHECK(w.error() == "json: a map key must be a string or an integer");
  w.take();
  CHECK(w.ok());
}

TEST_CASE("rooms codec: lua_value calls no metamethods") {
  LuaState lua;
  lua.push(R"(setmetatable({x = 1}, {
      __index = function() error("index called") end,
      __pairs = function() error("pairs called") end,
      __len = function() error("len called") end}))");
  for (Codec codec : kCodecs) {
    Writer w(codec);
    std::string error;
    REQUIRE_MESSAGE(w.lua_value(lua.L, -1, error), error);
    Value v = decoded(codec, w.take());
    CHECK(v.integer_at("x") == 1);
    CHECK(v.entries.size() == 1);
  }
}

TEST_CASE("rooms codec: decoders refuse malformed, truncated and trailing bytes") {
  Value v;
  std::string error;
  // msgpack: 0xc1 is never used; ext types are refused; a cut string; two values.
  CHECK_FALSE(decode(Codec::msgpack, "\xc1", v, error));
  CHECK(error.find("msgpack: invalid byte") == 0);
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xd4, 0x01, 0x02}), v, error));
  CHECK(error == "msgpack: ext values are not accepted");
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xa5, 'a', 'b'}), v, error));
  CHECK(error == "msgpack: truncated");
  CHECK_FALSE(decode(Codec::msgpack, "", v, error));
  CHECK(error == "msgpack: truncated");
  CHECK_FALSE(decode(Codec::msgpack, bytes({0x92, 0x01}), v, error));
  CHECK_FALSE(decode(Codec::msgpack, bytes({0x01, 0x02}), v, error));
  CHECK(error == "msgpack: 1 trailing bytes after the value");
  // Map keys are strings or integers.
  CHECK_FALSE(decode(Codec::msgpack, bytes({0x81, 0xc0, 0x01}), v, error));
  CHECK(error == "msgpack: a map key must be a string or an integer");
  CHECK_FALSE(decode(Codec::msgpack, bytes({0x81, 0x90, 0x01}), v, error));
  // json.
  for (std::string bad : {"", "{", "[1,]", "{\"a\" 1}", "nul", "'x'", "{1: 2}", "\"\xff\"", "\"\xc0\x80\""}) {
    CAPTURE(bad);
    CHECK_FALSE(decode(Codec::json, bad, v, error));
    CHECK(error.find("json: ") == 0);
    CHECK(error.size() < 300);
  }
  CHECK_FALSE(decode(Codec::json, "1 2", v, error));
  CHECK_FALSE(decode(Codec::json, "{} x", v, error));
  // A float32 reads as a float.
  Value f = decoded(Codec::msgpack, bytes({0xca, 0x3f, 0x00, 0x00, 0x00}));
  CHECK(f.kind == Value::Kind::number);
  CHECK(f.number == 0.5);
}

TEST_CASE("rooms codec: integers outside int64 are refused, int64's ends accepted") {
  Value v;
  std::string error;
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}), v, error));
  CHECK(error == "msgpack: integer 9223372036854775808 is outside int64");
  CHECK(decoded(Codec::msgpack, bytes({0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})).integer == INT64_MAX);
  CHECK(decoded(Codec::msgpack, bytes({0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0})).integer == INT64_MIN);
  CHECK_FALSE(decode(Codec::json, "9223372036854775808", v, error));
  CHECK(error == "json: integer 9223372036854775808 is outside int64");
  CHECK_FALSE(decode(Codec::json, "[-9223372036854775809]", v, error));
  CHECK(error == "json: integer -9223372036854775809 is outside int64");
  CHECK_FALSE(decode(Codec::json, "123456789012345678901234567890", v, error));
  CHECK(decoded(Codec::json, "9223372036854775807").integer == INT64_MAX);
  CHECK(decoded(Codec::json, "-9223372036854775808").integer == INT64_MIN);
  CHECK(decoded(Codec::json, "1e3").kind == Value::Kind::number);
  CHECK_FALSE(decode(Codec::json, "1e400", v, error));
  CHECK(error.find("json: number overflow parsing '1e400'") == 0);
}

TEST_CASE("rooms codec: nesting 64 deep decodes, 65 is refused, 100000 fails fast without recursion") {
  auto msgpack_nested = [](int depth) { return std::string(depth - 1, '\x91') + '\x90'; };
  auto json_nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  Value v;
  std::string error;
  REQUIRE(decode(Codec::msgpack, msgpack_nested(64), v, error));
  REQUIRE(decode(Codec::json, json_nested(64), v, error));
  CHECK_FALSE(decode(Codec::msgpack, msgpack_nested(65), v, error));
  CHECK(error == "msgpack: nested deeper than 64");
  CHECK_FALSE(decode(Codec::json, json_nested(65), v, error));
  CHECK(error == "json: nested deeper than 64");
  CHECK_FALSE(decode(Codec::msgpack, msgpack_nested(100000), v, error));
  CHECK_FALSE(decode(Codec::json, std::string(100000, '['), v, error));
  CHECK(error == "json: nested deeper than 64");
  // 64 deep as Lua tables, back again.
  LuaState lua;
  for (Codec codec : kCodecs) {
    std::string wire = encode_lua(codec, lua, nested_lua(64), error);
    REQUIRE_FALSE(wire.empty());
    push_value(lua.L, decoded(codec, wire));
    lua.push(nested_lua(64));
    CHECK(lua.equal_top_two());
  }
}

TEST_CASE("rooms codec: declared msgpack sizes beyond the input fail at once, allocating nothing large") {
  Value v;
  std::string error;
  auto started = std::chrono::steady_clock::now();
  // map32 and array32 claiming 2^32-1 entries, in 5 bytes.
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xdf, 0xff, 0xff, 0xff, 0xff}), v, error));
  CHECK(error == "msgpack: containers declare 8589934590 items in 5 bytes");
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xdd, 0xff, 0xff, 0xff, 0xff}), v, error));
  // Nested claims add up: each one alone would fit in the input.
  std::string nested = bytes({0xdc, 0x00, 0x08}) + bytes({0xdc, 0x00, 0x08}) + std::string(8, '\x01');
  CHECK_FALSE(decode(Codec::msgpack, nested, v, error));
  // str32 and bin32 claiming 4 GiB are truncated, not allocated.
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}), v, error));
  CHECK(error == "msgpack: truncated");
  CHECK_FALSE(decode(Codec::msgpack, bytes({0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}), v, error));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
}

TEST_CASE("rooms codec: catalog envelopes - begin_message writes {t, id, p}, decode_message reads them") {
  for (Codec codec : kCodecs) {
    CAPTURE(codec_name(codec));
    Writer w(codec);
    begin_message(w, "room.message", 4000000000u);
    w.begin_map(2);
    w.key("room");
    w.integer(12);
    w.key("type");
    w.string("player.move");
    Message m;
    std::string error;
    REQUIRE_MESSAGE(decode_message(codec, w.take(), m, error), error);
    CHECK(m.type == "room.message");
    CHECK(m.id == 4000000000u);
    CHECK(m.payload.integer_at("room") == 12);
    CHECK(m.payload.string_at("type") == "player.move");
    CHECK_FALSE(m.payload.boolean_at("room"));
    CHECK(m.payload.find("absent") == nullptr);

    // No id: two entries; a payload of a script value 64 deep fits.
    LuaState lua;
    lua.push(nested_lua(64));
    begin_message(w, "rpc.response");
    w.begin_map(1);
    w.key("data");
    REQUIRE(w.lua_value(lua.L, -1, error));
    REQUIRE_MESSAGE(decode_message(codec, w.take(), m, error), error);
    CHECK(m.id == 0);
    CHECK(m.type == "rpc.response");
    REQUIRE(m.payload.find("data") != nullptr);
  }
  {
    Message m;
    std::string error;
    // Absent p is an empty map; other keys are ignored.
    REQUIRE(decode_message(Codec::json, R"({"t":"room.list","x":[1]})", m, error));
    CHECK(m.payload.kind == Value::Kind::map);
    CHECK(m.payload.entries.empty());
    for (std::string bad : {R"([1])", R"({"p":{}})", R"({"t":1})", R"({"t":"a","p":[1]})", R"({"t":"a","id":0})",
                            R"({"t":"a","id":4294967296})", R"({"t":"a","id":"1"})", R"({"t":"a","id":1.0})"}) {
      CAPTURE(bad);
      CHECK_FALSE(decode_message(Codec::json, bad, m, error));
      CHECK_FALSE(error.empty());
    }
    // The envelope and p add two levels over a script value's 64, no more.
    std::string deep = R"({"t":"a","p":{"data":)" + std::string(64, '[') + std::string(64, ']') + "}}";
    CHECK(decode_message(Codec::json, deep, m, error));
    deep = R"({"t":"a","p":{"data":)" + std::string(65, '[') + std::string(65, ']') + "}}";
    CHECK_FALSE(decode_message(Codec::json, deep, m, error));
  }
}

TEST_CASE("rooms codec: pick_codec takes the first name nshost speaks") {
  CHECK(pick_codec("json,msgpack") == Codec::json);
  CHECK(pick_codec("msgpack,json") == Codec::msgpack);
  CHECK(pick_codec("cbor,json") == Codec::json);
  CHECK(pick_codec(" msgpack , json") == Codec::msgpack);
  CHECK(pick_codec(",,\tjson\t,") == Codec::json);
  CHECK_FALSE(pick_codec("foo"));
  CHECK_FALSE(pick_codec(""));
  CHECK_FALSE(pick_codec(" , "));
  CHECK_FALSE(pick_codec("JSON"));
  CHECK_FALSE(pick_codec("msg pack"));
  CHECK(codec_from_name(codec_name(Codec::msgpack)) == Codec::msgpack);
  CHECK(codec_from_name(codec_name(Codec::json)) == Codec::json);
  CHECK_FALSE(codec_from_name("json "));
}

TEST_CASE("rooms codec: push_value lets the last of duplicate keys win, like find") {
  Value v = decoded(Codec::json, R"({"a":1,"a":2})");
  CHECK(v.integer_at("a") == 2);
  LuaState lua;
  push_value(lua.L, v);
  lua_getfield(lua.L, -1, "a");
  CHECK(lua_tointeger(lua.L, -1) == 2);
}
