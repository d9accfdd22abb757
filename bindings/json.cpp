// json.encode / json.decode (RFC 8259) on nlohmann::json: decode streams the
// parser's SAX events straight onto the Lua stack; encode walks Lua values.
// Failures return nil, "message" (docs/net.md "json").
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"

namespace nshost {
namespace {

constexpr int kMaxDepth = 200;
// The registry's light userdata sentinel for JSON null (json.null).
char g_null_sentinel;

void push_null(lua_State* L) { lua_pushlightuserdata(L, &g_null_sentinel); }

// Builds Lua values from parser events. Each open container is a table on the
// stack; a pending object key sits above its table until its value arrives.
class LuaSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit LuaSax(lua_State* L) : L_(L) {}
  std::string error;

  bool null() override { return value([&] { push_null(L_); }); }
  bool boolean(bool b) override { return value([&] { lua_pushboolean(L_, b); }); }
  bool number_integer(number_integer_t n) override { return value([&] { lua_pushinteger(L_, n); }); }
  bool number_unsigned(number_unsigned_t n) override {
    return value([&] {
      if (n <= static_cast<number_unsigned_t>(LUA_MAXINTEGER)) lua_pushinteger(L_, static_cast<lua_Integer>(n));
      else lua_pushnumber(L_, static_cast<lua_Number>(n));
    });
  }
  bool number_float(number_float_t x, const string_t&) override { return value([&] { lua_pushnumber(L_, x); }); }
  bool string(string_t& s) override { return value([&] { lua_pushlstring(L_, s.data(), s.size()); }); }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override { return open(); }
  bool key(string_t& k) override {
    luaL_checkstack(L_, 2, "json.decode");
    lua_pushlstring(L_, k.data(), k.size());  // [..., table, key]
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override {
    if (!open()) return false;
    frames_.back().is_array = true;
    return true;
  }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = e.what();
    auto pos = error.find("] ");  // drop nlohmann's "[json.exception.parse_error.101] " prefix
    if (pos != std::string::npos) error.erase(0, pos + 2);
    return false;
  }

 private:
  struct Frame {
    bool is_array;
    lua_Integer next_index;
  };
  template <class Push>
  bool value(Push push) {
    luaL_checkstack(L_, 2, "json.decode");
    push();
    store();
    return true;
  }
  // Puts the value on top into the enclosing container, if any.
  void store() {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    if (f.is_array) lua_rawseti(L_, -2, f.next_index++);  // [..., array]
    else lua_rawset(L_, -3);                               // [..., object, key, value] -> [..., object]
  }
  bool open() {
    if (static_cast<int>(frames_.size()) >= kMaxDepth) {
      error = "nesting deeper than " + std::to_string(kMaxDepth) + " levels";
      return false;
    }
    luaL_checkstack(L_, 3, "json.decode");
    lua_newtable(L_);
    frames_.push_back(Frame{false, 1});
    return true;
  }
  bool close() {
    frames_.pop_back();
    store();
    return true;
  }
  lua_State* L_;
  std::vector<Frame> frames_;
};

int json_decode(lua_State* L) {
  StackGuard guard(L);
  std::string_view text = check_bytes(L, 1);
  int base = lua_gettop(L);
  LuaSax sax(L);
  bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax, nlohmann::json::input_format_t::json, true);
  if (!ok) {
    lua_settop(L, base);
    lua_pushnil(L);
    lua_pushstring(L, sax.error.empty() ? "invalid JSON" : sax.error.c_str());
    return guard.returns(2);
  }
  return guard.returns(1);  // [text, value]
}

struct EncodeError {
  std::string message;
};

void encode_value(lua_State* L, int index, nlohmann::json& out, int depth);

bool is_sequence(lua_State* L, int index, lua_Integer& length) {
  length = static_cast<lua_Integer>(lua_rawlen(L, index));
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, index)) {
    lua_pop(L, 1);
    ++count;
    if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return false;
    }
  }
  return count == length && length > 0;
}

void encode_table(lua_State* L, int index, nlohmann::json& out, int depth) {
  if (depth > kMaxDepth) throw EncodeError{"nesting deeper than " + std::to_string(kMaxDepth) + " levels (a cycle?)"};
  luaL_checkstack(L, 4, "json.encode");
  lua_Integer length = 0;
  if (is_sequence(L, index, length)) {
    out = nlohmann::json::array();
    for (lua_Integer i = 1; i <= length; ++i) {
      lua_rawgeti(L, index, i);
      nlohmann::json item;
      encode_value(L, lua_gettop(L), item, depth + 1);
      out.push_back(std::move(item));
      lua_pop(L, 1);
    }
    return;
  }
  out = nlohmann::json::object();
  lua_pushnil(L);
  while (lua_next(L, index)) {  // [key, value]
    if (lua_type(L, -2) != LUA_TSTRING)
      throw EncodeError{std::string("cannot encode a table with a ") + luaL_typename(L, -2) +
                        " key as a JSON object (keys must be strings; arrays are sequences 1..n)"};
    size_t n = 0;
    const char* key = lua_tolstring(L, -2, &n);
    encode_value(L, lua_gettop(L), out[std::string(key, n)], depth + 1);
    lua_pop(L, 1);  // [key]
  }
}

void encode_value(lua_State* L, int index, nlohmann::json& out, int depth) {
  switch (lua_type(L, index)) {
    case LUA_TNIL: out = nullptr; return;
    case LUA_TBOOLEAN: out = static_cast<bool>(lua_toboolean(L, index)); return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) {
        out = static_cast<int64_t>(lua_tointeger(L, index));
      } else {
        double x = lua_tonumber(L, index);
        if (!std::isfinite(x)) throw EncodeError{"cannot encode NaN or infinity"};
        out = x;
      }
      return;
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      out = std::string(s, n);
      return;
    }
    case LUA_TTABLE: encode_table(L, index, out, depth); return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, index) == &g_null_sentinel) {
        out = nullptr;
        return;
      }
      [[fallthrough]];
    default: throw EncodeError{std::string("cannot encode a ") + luaL_typename(L, index) + " value"};
  }
}

int json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  StackGuard guard(L);
  std::string text;
  try {
    nlohmann::json doc;
    encode_value(L, 1, doc, 0);
    text = doc.dump();
  } catch (const EncodeError& e) {
    lua_settop(L, 1);  // drop what the walk left on the stack
    lua_pushnil(L);
    lua_pushstring(L, e.message.c_str());
    return guard.returns(2);
  } catch (const nlohmann::json::type_error& e) {
    // Invalid UTF-8 in a string (error 316).
    std::string message = e.what();
    auto pos = message.find("] ");
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_pushstring(L, pos == std::string::npos ? message.c_str() : message.c_str() + pos + 2);
    return guard.returns(2);
  }
  lua_pushlstring(L, text.data(), text.size());
  return guard.returns(1);
}

const luaL_Reg json_functions[] = {
    {"encode", guarded<json_encode>},
    {"decode", guarded<json_decode>},
    {nullptr, nullptr},
};

}  // namespace

void open_json(lua_State* L) {
  luaL_newlib(L, json_functions);  // [json]
  push_null(L);
  lua_setfield(L, -2, "null");
  lua_setglobal(L, "json");
}

}  // namespace nshost
