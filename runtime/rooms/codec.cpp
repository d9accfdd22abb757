// Codec names, the Value tree, base64 and the catalog envelope. The writer
// is in codec_writer.cpp, the decoders in codec_decode.cpp.
#include "runtime/rooms/codec.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/rooms/codec_internal.hpp"

namespace nshost::rooms {

const char* codec_name(Codec codec) { return codec == Codec::msgpack ? "msgpack" : "json"; }

std::optional<Codec> codec_from_name(std::string_view name) {
  if (name == "msgpack") return Codec::msgpack;
  if (name == "json") return Codec::json;
  return std::nullopt;
}

std::optional<Codec> pick_codec(std::string_view offered) {
  while (!offered.empty()) {
    size_t comma = offered.find(',');
    std::string_view name = offered.substr(0, comma);
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
    size_t first = name.find_first_not_of(" \t");
    if (first == std::string_view::npos) continue;
    name = name.substr(first, name.find_last_not_of(" \t") - first + 1);
    if (auto codec = codec_from_name(name)) return codec;
  }
  return std::nullopt;
}

const Value* Value::find(std::string_view key) const {
  if (kind != Kind::map) return nullptr;
  // The last of duplicate keys wins, as it does once pushed into Lua.
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first.kind == Kind::string && it->first.string == key) return &it->second;
  }
  return nullptr;
}

std::optional<std::string_view> Value::string_at(std::string_view key) const {
  const Value* v = find(key);
  if (!v || v->kind != Kind::string) return std::nullopt;
  return std::string_view(v->string);
}

std::optional<int64_t> Value::integer_at(std::string_view key) const {
  const Value* v = find(key);
  if (!v || v->kind != Kind::integer) return std::nullopt;
  return v->integer;
}

std::optional<bool> Value::boolean_at(std::string_view key) const {
  const Value* v = find(key);
  if (!v || v->kind != Kind::boolean) return std::nullopt;
  return v->boolean;
}

bool Value::operator==(const Value& other) const {
  if (kind != other.kind) return false;
  switch (kind) {
    case Kind::nil:
      return true;
    case Kind::boolean:
      return boolean == other.boolean;
    case Kind::integer:
      return integer == other.integer;
    case Kind::number:
      return std::memcmp(&number, &other.number, sizeof number) == 0;
    case Kind::string:
      return string == other.string;
    case Kind::array:
      return items == other.items;
    case Kind::map:
      return entries == other.entries;
  }
  return false;
}

void push_value(lua_State* L, const Value& value) {
  luaL_checkstack(L, 3, "rooms: value nested too deep");
  switch (value.kind) {
    case Value::Kind::nil:
      lua_pushnil(L);
      return;
    case Value::Kind::boolean:
      lua_pushboolean(L, value.boolean);
      return;
    case Value::Kind::integer:
      lua_pushinteger(L, static_cast<lua_Integer>(value.integer));
      return;
    case Value::Kind::number:
      lua_pushnumber(L, static_cast<lua_Number>(value.number));
      return;
    case Value::Kind::string:
      lua_pushlstring(L, value.string.data(), value.string.size());
      return;
    case Value::Kind::array: {
      constexpr size_t kIntMax = std::numeric_limits<int>::max();
      lua_createtable(L, static_cast<int>(std::min(value.items.size(), kIntMax)), 0);
      lua_Integer i = 0;
      for (const Value& item : value.items) {
        push_value(L, item);
        lua_rawseti(L, -2, ++i);
      }
      return;
    }
    case Value::Kind::map: {
      constexpr size_t kIntMax = std::numeric_limits<int>::max();
      lua_createtable(L, 0, static_cast<int>(std::min(value.entries.size(), kIntMax)));
      for (const auto& [key, item] : value.entries) {
        if (key.kind == Value::Kind::nil || (key.kind == Value::Kind::number && std::isnan(key.number))) continue;
        push_value(L, key);
        push_value(L, item);
        lua_rawset(L, -3);
      }
      return;
    }
  }
  lua_pushnil(L);
}

namespace {

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kBase64Values = base64_table();

}  // namespace

std::string encode_base64(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kBase64Alphabet[v >> 18];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += kBase64Alphabet[(v >> 6) & 63];
    out += kBase64Alphabet[v & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (rest == 2) v |= uint32_t{p[i + 1]} << 8;
    out += kBase64Alphabet[v >> 18];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    uint32_t v = 0;
    for (size_t j = 0; j < 4; ++j) {
      int8_t d = j >= 4 - static_cast<size_t>(pad) ? 0 : kBase64Values[static_cast<unsigned char>(text[i + j])];
      if (d < 0) return std::nullopt;
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    // Canonical form only: the bits under the padding are zero.
    if ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)) return std::nullopt;
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

namespace {

bool decode_depth(Codec codec, std::string_view bytes, int max_depth, Value& out, std::string& error) {
  return codec == Codec::msgpack ? detail::decode_msgpack(bytes, max_depth, out, error)
                                 : detail::decode_json(bytes, max_depth, out, error);
}

}  // namespace

bool decode(Codec codec, std::string_view bytes, Value& out, std::string& error) {
  return decode_depth(codec, bytes, kMaxDepth, out, error);
}

bool decode_message(Codec codec, std::string_view bytes, Message& out, std::string& error) {
  Value root;
  if (!decode_depth(codec, bytes, kMaxMessageDepth, root, error)) return false;
  if (root.kind != Value::Kind::map) {
    error = "a message is a map {t, p, id}";
    return false;
  }
  Value* type = nullptr;
  Value* payload = nullptr;
  Value* id = nullptr;
  for (auto it = root.entries.rbegin(); it != root.entries.rend(); ++it) {
    if (it->first.kind != Value::Kind::string) continue;
    const std::string& k = it->first.string;
    Value** field = k == "t" ? &type : k == "p" ? &payload : k == "id" ? &id : nullptr;
    if (field && !*field) *field = &it->second;
  }
  if (!type || type->kind != Value::Kind::string) {
    error = "message without a string t";
    return false;
  }
  if (payload && payload->kind != Value::Kind::map) {
    error = "message p is not a map";
    return false;
  }
  if (id && (id->kind != Value::Kind::integer || id->integer < 1 || id->integer > 0xFFFFFFFFll)) {
    error = "message id is not an integer in 1..2^32-1";
    return false;
  }
  out.type = std::move(type->string);
  out.payload = payload ? std::move(*payload) : Value{};
  out.payload.kind = Value::Kind::map;
  out.id = id ? static_cast<uint32_t>(id->integer) : 0;
  return true;
}

void begin_message(Writer& writer, std::string_view type, uint32_t id) {
  writer.begin_map(id != 0 ? 3 : 2);
  writer.key("t");
  writer.string(type);
  if (id != 0) {
    writer.key("id");
    writer.integer(id);
  }
  writer.key("p");
}

}  // namespace nshost::rooms
