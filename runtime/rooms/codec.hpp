#pragma once
// The codecs of seed 003's message catalog: how one catalog message (a map
// {t = type, p = payload, id = request id}) and the Lua values inside it
// travel on the room channels (wire::kChannelRoomReliable/Unreliable).
// Two codecs: "msgpack" (msgpack-c) and "json" (nlohmann::json); the
// handshake picks one per session (pick_codec). docs/protocol.md "Rooms"
// is the normative description.
//
// Values: nil, booleans, integers (int64, stay integers), floats (double,
// stay floats), strings and tables of those. A table whose keys are exactly
// 1..n (n >= 1) is an array; any other table (the empty one included) is a
// map with string or integer keys. Tables nest at most kMaxDepth deep; a
// cycle, a function, a userdata or a thread is an encode error. msgpack
// strings are byte-exact; json strings must be UTF-8 (RFC 8259), and a json
// map's integer keys become strings. Bytes that must pass untouched use
// Writer::bytes (msgpack bin; json base64 text, seed 003 `data_b64`).
//
// Decoders take untrusted bytes: they never read out of bounds, refuse
// nesting past kMaxDepth, allocate at most a bounded multiple of the input,
// and report one readable error.
#include <lua.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nshost::rooms {

enum class Codec : uint8_t { msgpack, json };

constexpr int kMaxDepth = 64;

// "msgpack" or "json".
const char* codec_name(Codec codec);
std::optional<Codec> codec_from_name(std::string_view name);
// The first codec of a comma-separated preference list ("msgpack,json")
// that nshost speaks; nullopt when none is. Names are case-sensitive;
// spaces and tabs around a name are ignored, empty names skipped.
std::optional<Codec> pick_codec(std::string_view offered);

// A message's envelope ({t, p}) and payload map sit above the script's
// value, so a whole catalog message may nest kMaxDepth + 2 deep.
constexpr int kMaxMessageDepth = kMaxDepth + 2;

// A decoded value: the codec-independent tree a payload decodes to. Owns
// everything it holds.
struct Value {
  enum class Kind : uint8_t { nil, boolean, integer, number, string, array, map };
  // Declared here, defaulted below the class: clang with libstdc++ cannot
  // define them while Value is still incomplete (pair<Value, Value>).
  Value();
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  ~Value();

  Kind kind = Kind::nil;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string string;                          // string (also a msgpack bin)
  std::vector<Value> items;                    // array
  std::vector<std::pair<Value, Value>> entries;  // map, in wire order

  // A map's value for a string key; nullptr when absent or not a map.
  const Value* find(std::string_view key) const;
  // Typed reads of a map field: nullopt when absent or of another kind.
  std::optional<std::string_view> string_at(std::string_view key) const;
  std::optional<int64_t> integer_at(std::string_view key) const;
  std::optional<bool> boolean_at(std::string_view key) const;

  // Same kind and same contents; numbers compare by bits (so NaN equals
  // itself and -0.0 differs from 0.0), maps compare in wire order.
  bool operator==(const Value& other) const;
};

inline Value::Value() = default;
inline Value::Value(const Value&) = default;
inline Value::Value(Value&&) noexcept = default;
inline Value& Value::operator=(const Value&) = default;
inline Value& Value::operator=(Value&&) noexcept = default;
inline Value::~Value() = default;

// Pushes `value` onto L as a Lua value (tables for arrays and maps). May
// raise a Lua error (out of memory): call it inside ScriptHost::protect or
// a handler's argument pusher. Pushes exactly one value. A map entry whose
// key cannot index a Lua table (nil, NaN) is skipped; a nil array item
// leaves a hole.
void push_value(lua_State* L, const Value& value);

// Builds one encoded message. Calls follow the shape being written: a map
// of n entries is begin_map(n) then n (key, value) pairs; an array of n is
// begin_array(n) then n values. Does not touch Lua except in lua_value,
// which only reads. A json string that is not UTF-8, a json number that is
// not finite or a json map key that is neither a string nor an integer
// fails the writer (ok() false, error() says why): discard the message.
class Writer {
 public:
  explicit Writer(Codec codec);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Codec codec() const { return codec_; }
  void begin_map(uint32_t entries);
  void begin_array(uint32_t items);
  void key(std::string_view key);  // a string map key
  void nil();
  void boolean(bool value);
  void integer(int64_t value);
  void number(double value);
  void string(std::string_view value);
  // Raw bytes: msgpack bin, json base64 (RFC 4648) text.
  void bytes(std::string_view value);
  void value(const Value& value);
  // The Lua value at `index` of L (absolute or relative), read without
  // calling metamethods and without raising. False with `error` set
  // ("cycle at data.a.b", "function at data.f", "nested deeper than 64",
  // "json: string at data.s is not valid UTF-8") and the writer then holds
  // an incomplete message: discard it. `path` names the value in the error.
  bool lua_value(lua_State* L, int index, std::string& error, std::string_view path = "data");
  // The encoded bytes; the writer is empty (and ok) afterwards.
  std::string take();
  size_t size() const;
  bool ok() const;
  // The first failure, "" while ok().
  const std::string& error() const;

 private:
  struct Impl;
  Codec codec_;
  std::unique_ptr<Impl> impl_;
};

// Decodes one encoded value (the whole input; trailing bytes are an error).
// False with `error` set on malformed input, nesting past kMaxDepth, an
// integer outside int64, or a json map key that is not a string.
bool decode(Codec codec, std::string_view bytes, Value& out, std::string& error);

// RFC 4648 base64 with padding (json's `data_b64`). decode_base64 refuses
// anything but the canonical alphabet with correct padding.
std::string encode_base64(std::string_view bytes);
std::optional<std::string> decode_base64(std::string_view text);

// One catalog message as it travels: {t = type, p = payload [, id = n]}.
struct Message {
  std::string type;  // "room.message", "rpc.response", ...
  Value payload;     // a map (an absent p decodes to an empty map)
  uint32_t id = 0;   // request id, 0 when absent
};
// Decodes a catalog message: a map with a string "t", an optional map "p",
// an optional integer "id" in 1..2^32-1; other keys are ignored. Nesting
// is bounded by kMaxMessageDepth (a script value inside p: kMaxDepth).
bool decode_message(Codec codec, std::string_view bytes, Message& out, std::string& error);
// Begins a catalog message: writes the envelope's map header, "t" and (when
// id != 0) "id", then the key "p"; the caller writes the payload value
// (usually begin_map) next.
void begin_message(Writer& writer, std::string_view type, uint32_t id = 0);

}  // namespace nshost::rooms
