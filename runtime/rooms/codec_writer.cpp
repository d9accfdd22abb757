// Writer: msgpack through msgpack-c's packer straight into the output
// string; json written by hand (containers close themselves once their
// declared count is written). lua_value walks a Lua value with raw access
// only, so it never raises and never runs script code.
#define MSGPACK_NO_BOOST
#include <msgpack/pack.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/rooms/codec.hpp"
#include "runtime/rooms/codec_internal.hpp"

namespace nshost::rooms {
namespace {

struct StringSink {
  std::string* out;
  void write(const char* p, size_t n) { out->append(p, n); }
};

bool append_json_string(std::string& out, std::string_view s) {
  if (!detail::valid_utf8(s)) return false;
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
  return true;
}

}  // namespace

struct Writer::Impl {
  Impl() { out.reserve(128); }
  std::string out;
  std::string error;
  StringSink sink{&out};
  msgpack::packer<StringSink> packer{sink};

  // json: the open containers, innermost last.
  struct Frame {
    bool map;
    bool want_key;
    bool first;
    uint32_t left;
  };
  std::vector<Frame> frames;
  enum class Slot { top, item, key, value };

  void fail(std::string message) {
    if (error.empty()) error = std::move(message);
  }

  // json: where the next value goes; writes the separating comma.
  Slot enter() {
    if (frames.empty()) return Slot::top;
    Frame& f = frames.back();
    if (f.map && !f.want_key) return Slot::value;
    if (!f.first) out += ',';
    f.first = false;
    return f.map ? Slot::key : Slot::item;
  }
  // json: a key or a whole value has been written; closes what it completes.
  void done() {
    while (!frames.empty()) {
      Frame& f = frames.back();
      if (f.map) {
        f.want_key = !f.want_key;
        if (!f.want_key) {
          out += ':';
          return;
        }
      }
      if (--f.left > 0) return;
      out += f.map ? '}' : ']';
      frames.pop_back();
    }
  }
  // json: a value that cannot be a map key.
  void scalar(std::string_view text) {
    if (enter() == Slot::key) return fail("json: a map key must be a string or an integer");
    out += text;
    done();
  }
  void open(bool map, uint32_t n) {
    if (enter() == Slot::key) return fail("json: a map key must be a string or an integer");
    if (n == 0) {
      out += map ? "{}" : "[]";
      done();
      return;
    }
    out += map ? '{' : '[';
    frames.push_back(Frame{map, map, true, n});
  }
  bool string(std::string_view s) {
    enter();
    if (!append_json_string(out, s)) {
      fail("json: string is not valid UTF-8");
      return false;
    }
    done();
    return true;
  }
  void integer(int64_t v) {
    char buf[24];
    auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    if (enter() == Slot::key) {
      out += '"';
      out.append(buf, end);
      out += '"';
    } else {
      out.append(buf, end);
    }
    done();
  }
  bool number(double v) {
    if (!std::isfinite(v)) {
      fail("json: number is not finite");
      return false;
    }
    char buf[40];
    auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    std::string_view text(buf, static_cast<size_t>(end - buf));
    // Shortest round-trip form, made to read back as a float: 1 -> 1.0.
    if (text.find_first_of(".e") == std::string_view::npos) {
      *end++ = '.';
      *end++ = '0';
      text = std::string_view(buf, static_cast<size_t>(end - buf));
    }
    scalar(text);
    return true;
  }
};

Writer::Writer(Codec codec) : codec_(codec), impl_(std::make_unique<Impl>()) {}
Writer::~Writer() = default;

void Writer::begin_map(uint32_t entries) {
  if (codec_ == Codec::msgpack) impl_->packer.pack_map(entries);
  else impl_->open(true, entries);
}

void Writer::begin_array(uint32_t items) {
  if (codec_ == Codec::msgpack) impl_->packer.pack_array(items);
  else impl_->open(false, items);
}

void Writer::key(std::string_view key) { string(key); }

void Writer::nil() {
  if (codec_ == Codec::msgpack) impl_->packer.pack_nil();
  else impl_->scalar("null");
}

void Writer::boolean(bool value) {
  if (codec_ == Codec::msgpack) value ? impl_->packer.pack_true() : impl_->packer.pack_false();
  else impl_->scalar(value ? "true" : "false");
}

void Writer::integer(int64_t value) {
  if (codec_ == Codec::msgpack) impl_->packer.pack_int64(value);
  else impl_->integer(value);
}

void Writer::number(double value) {
  if (codec_ == Codec::json) {
    impl_->number(value);
    return;
  }
  // float 64 by hand: msgpack-c's pack_double writes integral doubles
  // (1.0, -0.0) as integers, and floats must stay floats.
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  impl_->out.append(buf, sizeof buf);
}

void Writer::string(std::string_view value) {
  if (codec_ == Codec::json) {
    impl_->string(value);
    return;
  }
  if (value.size() > UINT32_MAX) return impl_->fail("msgpack: string over 4 GiB");
  impl_->packer.pack_str(static_cast<uint32_t>(value.size()));
  impl_->packer.pack_str_body(value.data(), static_cast<uint32_t>(value.size()));
}

void Writer::bytes(std::string_view value) {
  if (codec_ == Codec::json) {
    impl_->string(encode_base64(value));
    return;
  }
  if (value.size() > UINT32_MAX) return impl_->fail("msgpack: bytes over 4 GiB");
  impl_->packer.pack_bin(static_cast<uint32_t>(value.size()));
  impl_->packer.pack_bin_body(value.data(), static_cast<uint32_t>(value.size()));
}

void Writer::value(const Value& value) {
  switch (value.kind) {
    case Value::Kind::nil:
      return nil();
    case Value::Kind::boolean:
      return boolean(value.boolean);
    case Value::Kind::integer:
      return integer(value.integer);
    case Value::Kind::number:
      return number(value.number);
    case Value::Kind::string:
      return string(value.string);
    case Value::Kind::array:
      begin_array(static_cast<uint32_t>(value.items.size()));
      for (const Value& item : value.items) this->value(item);
      return;
    case Value::Kind::map:
      begin_map(static_cast<uint32_t>(value.entries.size()));
      for (const auto& [k, v] : value.entries) {
        this->value(k);
        this->value(v);
      }
      return;
  }
}

std::string Writer::take() {
  std::string bytes = std::move(impl_->out);
  impl_->out.clear();
  impl_->error.clear();
  impl_->frames.clear();
  return bytes;
}

size_t Writer::size() const { return impl_->out.size(); }
bool Writer::ok() const { return impl_->error.empty(); }
const std::string& Writer::error() const { return impl_->error; }

namespace {

// Walks one Lua value into a Writer. The path to the value being written is
// kept as (key, kind) pairs that point into the Lua stack, and is spelled
// out only when an error names it.
class LuaWalker {
 public:
  LuaWalker(Writer& w, lua_State* L, std::string& error, std::string_view root)
      : w_(w), L_(L), error_(error), root_(root) {}

  bool value(int index, int depth) {
    switch (lua_type(L_, index)) {
      case LUA_TNIL:
        w_.nil();
        return true;
      case LUA_TBOOLEAN:
        w_.boolean(lua_toboolean(L_, index));
        return true;
      case LUA_TNUMBER:
        if (lua_isinteger(L_, index)) {
          w_.integer(lua_tointeger(L_, index));
          return true;
        }
        w_.number(lua_tonumber(L_, index));
        return w_.ok() || fail("json: number at " + path() + " is not finite (nan or inf)");
      case LUA_TSTRING: {
        size_t len;
        const char* s = lua_tolstring(L_, index, &len);
        w_.string(std::string_view(s, len));
        return w_.ok() || fail("json: string at " + path() + " is not valid UTF-8");
      }
      case LUA_TTABLE:
        return table(index, depth + 1);
      default:
        return fail(std::string(lua_typename(L_, lua_type(L_, index))) + " at " + path());
    }
  }

 private:
  struct PathKey {
    bool is_integer;
    lua_Integer integer;
    std::string_view string;
  };

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  std::string path() const {
    std::string p(root_);
    for (int i = 0; i < depth_; ++i) {
      const PathKey& k = keys_[i];
      if (k.is_integer) {
        p += '[' + std::to_string(k.integer) + ']';
      } else {
        p += '.';
        p.append(k.string.substr(0, 64));
      }
    }
    return p;
  }

  bool table(int index, int depth) {
    if (depth > kMaxDepth) return fail("nested deeper than " + std::to_string(kMaxDepth) + " at " + path());
    const void* self = lua_topointer(L_, index);
    for (int i = 0; i < open_count_; ++i) {
      if (open_[i] == self) return fail("cycle at " + path());
    }
    if (!lua_checkstack(L_, 4)) return fail("Lua stack exhausted at " + path());
    // First pass: the entry count and whether the keys are exactly 1..n.
    uint64_t count = 0;
    lua_Integer max_key = 0;
    bool positive_integers = true;
    lua_pushnil(L_);
    while (lua_next(L_, index) != 0) {
      ++count;
      if (lua_isinteger(L_, -2)) {
        lua_Integer k = lua_tointeger(L_, -2);
        if (k < 1) positive_integers = false;
        else if (k > max_key) max_key = k;
      } else {
        positive_integers = false;
      }
      lua_pop(L_, 1);
    }
    if (count > UINT32_MAX) return fail("table with over 2^32 entries at " + path());
    open_[open_count_++] = self;
    bool ok = count > 0 && positive_integers && static_cast<uint64_t>(max_key) == count ? array(index, count, depth)
                                                                                          : map(index, count, depth);
    if (ok) --open_count_;
    return ok;
  }

  bool array(int index, uint64_t count, int depth) {
    w_.begin_array(static_cast<uint32_t>(count));
    for (lua_Integer i = 1; i <= static_cast<lua_Integer>(count); ++i) {
      lua_rawgeti(L_, index, i);
      keys_[depth_++] = PathKey{true, i, {}};
      if (!value(lua_gettop(L_), depth)) return false;
      --depth_;
      lua_pop(L_, 1);
    }
    return true;
  }

  bool map(int index, uint64_t count, int depth) {
    w_.begin_map(static_cast<uint32_t>(count));
    lua_pushnil(L_);
    while (lua_next(L_, index) != 0) {
      int key = lua_gettop(L_) - 1;
      if (lua_type(L_, key) == LUA_TSTRING) {
        size_t len;
        const char* s = lua_tolstring(L_, key, &len);
        keys_[depth_++] = PathKey{false, 0, std::string_view(s, len)};
        w_.key(std::string_view(s, len));
        if (!w_.ok()) return fail("json: key at " + path() + " is not valid UTF-8");
      } else if (lua_isinteger(L_, key)) {
        keys_[depth_++] = PathKey{true, lua_tointeger(L_, key), {}};
        w_.integer(keys_[depth_ - 1].integer);
      } else {
        const char* kind = lua_type(L_, key) == LUA_TNUMBER ? "float" : lua_typename(L_, lua_type(L_, key));
        return fail(std::string(kind) + " key in table at " + path() + " (keys are strings or integers)");
      }
      if (!value(lua_gettop(L_), depth)) return false;
      --depth_;
      lua_pop(L_, 1);
    }
    return true;
  }

  Writer& w_;
  lua_State* L_;
  std::string& error_;
  std::string_view root_;
  // The path and the open tables: kMaxDepth bounds both, no heap.
  std::array<PathKey, kMaxDepth> keys_;
  int depth_ = 0;
  std::array<const void*, kMaxDepth> open_;
  int open_count_ = 0;
};

}  // namespace

bool Writer::lua_value(lua_State* L, int index, std::string& error, std::string_view path) {
  int top = lua_gettop(L);
  index = lua_absindex(L, index);
  LuaWalker walker(*this, L, error, path);
  bool ok = walker.value(index, 0);
  lua_settop(L, top);
  if (ok && !this->ok()) {
    error = impl_->error;
    return false;
  }
  if (!ok) impl_->error = error;  // the reason with its path
  return ok;
}

}  // namespace nshost::rooms
