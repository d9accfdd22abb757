// json.encode / json.decode (RFC 8259): decode streams nlohmann::json's SAX
// events straight onto the Lua stack; encode walks Lua values and writes the
// text itself. Both stay under the script's memory cap: encode allocates
// through the state's allocator, decode charges the parser's token buffer.
// Failures return nil, "message" (docs/net.md "json").
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"

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
  // The parser copies each string or number token into a buffer of its own
  // (outside Lua), at most the text's size.
  struct TokenCharge {
    ScriptHost& script;
    size_t bytes;
    ~TokenCharge() { script.release_external(bytes); }
  };
  ScriptHost& script = ScriptHost::from(L);
  if (!script.charge_external(text.size()))
    return guard.returns(
        push_failure(L, "json.decode of this text would pass the script's memory limit (--memory-limit)", "ENOMEM"));
  TokenCharge charge{script, text.size()};
  int base = lua_gettop(L);
  LuaSax sax(L);
  bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax, nlohmann::json::input_format_t::json, true);
  if (!ok) {
    lua_settop(L, base);
    return guard.returns(push_failure(L, sax.error.empty() ? "invalid JSON" : sax.error, "EINVAL"));
  }
  return guard.returns(1);  // [text, value]
}

struct EncodeError {
  std::string message;
};

constexpr const char* kEncodeNoMemory =
    "ENOMEM: json.encode would pass the script's memory limit (--memory-limit)";

// Allocates through the state's allocator, so the encoder's memory counts
// against the script's cap and is refused past it like any Lua allocation.
template <class T>
struct CappedAllocator {
  using value_type = T;
  lua_Alloc alloc;
  void* ud;
  CappedAllocator(lua_Alloc a, void* u) : alloc(a), ud(u) {}
  template <class U>
  CappedAllocator(const CappedAllocator<U>& other) : alloc(other.alloc), ud(other.ud) {}
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw EncodeError{kEncodeNoMemory};
    void* p = alloc(ud, nullptr, 0, n * sizeof(T));
    if (!p) throw EncodeError{kEncodeNoMemory};
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) { alloc(ud, p, n * sizeof(T), 0); }
  template <class U>
  bool operator==(const CappedAllocator<U>& other) const {
    return alloc == other.alloc && ud == other.ud;
  }
};

// The JSON text being written, grown through the state's allocator.
class CappedText {
 public:
  explicit CappedText(lua_State* L) { alloc_ = lua_getallocf(L, &ud_); }
  ~CappedText() {
    if (data_) alloc_(ud_, data_, capacity_, 0);
  }
  CappedText(const CappedText&) = delete;
  CappedText& operator=(const CappedText&) = delete;

  void append(const char* p, size_t n) {
    if (capacity_ - size_ < n) grow(n);
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void push(char c) { append(&c, 1); }
  std::string_view view() const { return {data_, size_}; }
  lua_Alloc allocator() const { return alloc_; }
  void* allocator_data() const { return ud_; }

 private:
  void grow(size_t n) {
    if (n > SIZE_MAX / 2 - size_) throw EncodeError{kEncodeNoMemory};
    size_t want = std::max<size_t>({size_ + n, capacity_ * 2, 256});
    void* grown = alloc_(ud_, data_, data_ ? capacity_ : 0, want);
    if (!grown) throw EncodeError{kEncodeNoMemory};
    data_ = static_cast<char*>(grown);
    capacity_ = want;
  }
  lua_Alloc alloc_;
  void* ud_ = nullptr;
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Length of the UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 if it is invalid there.
size_t utf8_sequence(const unsigned char* s, size_t n, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c == 0xe0) len = 3, lo = 0xa0;
  else if (c == 0xed) len = 3, hi = 0x9f;
  else if (c >= 0xe1 && c <= 0xef) len = 3;
  else if (c == 0xf0) len = 4, lo = 0x90;
  else if (c >= 0xf1 && c <= 0xf3) len = 4;
  else if (c == 0xf4) len = 4, hi = 0x8f;
  else return 0;
  if (n - i < len) return 0;
  if (s[i + 1] < lo || s[i + 1] > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if ((s[i + k] & 0xc0) != 0x80) return 0;
  return len;
}

// A JSON string literal: ", \ and control characters escaped, the rest
// (valid UTF-8) as is.
void encode_string(std::string_view text, CappedText& out) {
  auto* s = reinterpret_cast<const unsigned char*>(text.data());
  out.push('"');
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < text.size();) {
    unsigned char c = s[i];
    const char* escape = nullptr;
    char unicode[8];
    switch (c) {
      case '"': escape = "\\\""; break;
      case '\\': escape = "\\\\"; break;
      case '\b': escape = "\\b"; break;
      case '\f': escape = "\\f"; break;
      case '\n': escape = "\\n"; break;
      case '\r': escape = "\\r"; break;
      case '\t': escape = "\\t"; break;
      default:
        if (c < 0x20) {
          std::snprintf(unicode, sizeof unicode, "\\u%04x", c);
          escape = unicode;
        }
    }
    if (escape) {
      out.append(text.data() + run, i - run);
      out.append(escape, std::strlen(escape));
      run = ++i;
      continue;
    }
    size_t len = utf8_sequence(s, text.size(), i);
    if (len == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      throw EncodeError{"invalid UTF-8 byte at index " + std::to_string(i) + ": " + hex};
    }
    i += len;
  }
  out.append(text.data() + run, text.size() - run);
  out.push('"');
}

void encode_value(lua_State* L, int index, CappedText& out, int depth);

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

void encode_table(lua_State* L, int index, CappedText& out, int depth) {
  if (depth > kMaxDepth) throw EncodeError{"nesting deeper than " + std::to_string(kMaxDepth) + " levels (a cycle?)"};
  luaL_checkstack(L, 4, "json.encode");
  lua_Integer length = 0;
  if (is_sequence(L, index, length)) {
    out.push('[');
    for (lua_Integer i = 1; i <= length; ++i) {
      if (i > 1) out.push(',');
      lua_rawgeti(L, index, i);
      encode_value(L, lua_gettop(L), out, depth + 1);
      lua_pop(L, 1);
    }
    out.push(']');
    return;
  }
  // Keys in byte order, as before: the same table always encodes the same.
  // The key strings stay alive in the table, which nothing changes meanwhile.
  using Key = std::string_view;
  std::vector<Key, CappedAllocator<Key>> keys(CappedAllocator<Key>(out.allocator(), out.allocator_data()));
  lua_pushnil(L);
  while (lua_next(L, index)) {  // [key, value]
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      throw EncodeError{std::string("cannot encode a table with a ") + luaL_typename(L, -1) +
                        " key as a JSON object (keys must be strings; arrays are sequences 1..n)"};
    size_t n = 0;
    const char* key = lua_tolstring(L, -1, &n);
    keys.emplace_back(key, n);
  }
  std::sort(keys.begin(), keys.end());
  out.push('{');
  bool first = true;
  for (Key key : keys) {
    if (!first) out.push(',');
    first = false;
    encode_string(key, out);
    out.push(':');
    lua_pushlstring(L, key.data(), key.size());
    lua_rawget(L, index);
    encode_value(L, lua_gettop(L), out, depth + 1);
    lua_pop(L, 1);
  }
  out.push('}');
}

void encode_value(lua_State* L, int index, CappedText& out, int depth) {
  switch (lua_type(L, index)) {
    case LUA_TNIL: out.append("null"); return;
    case LUA_TBOOLEAN: out.append(lua_toboolean(L, index) ? "true" : "false"); return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) {
        char digits[24];
        auto end = std::to_chars(digits, digits + sizeof digits, lua_tointeger(L, index)).ptr;
        out.append(digits, static_cast<size_t>(end - digits));
      } else {
        double x = lua_tonumber(L, index);
        if (!std::isfinite(x)) throw EncodeError{"cannot encode NaN or infinity"};
        out.append(nlohmann::json(x).dump());  // shortest text that reads back as x
      }
      return;
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      encode_string(std::string_view(s, n), out);
      return;
    }
    case LUA_TTABLE: encode_table(L, index, out, depth); return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, index) == &g_null_sentinel) {
        out.append("null");
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
  try {
    CappedText text(L);
    encode_value(L, 1, text, 0);
    lua_settop(L, 1);
    lua_pushlstring(L, text.view().data(), text.view().size());
  } catch (const EncodeError& e) {
    lua_settop(L, 1);  // drop what the walk left on the stack
    return guard.returns(push_coded_failure(L, e.message, "EINVAL"));
  }
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
