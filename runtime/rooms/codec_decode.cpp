// Decoders of untrusted codec bytes into a Value tree. Both run on a
// library's event interface (msgpack-c's parse visitor, nlohmann's SAX) with
// an explicit stack of open containers: no recursion, a depth cap, and (for
// msgpack) declared container sizes charged against the input's length
// before anything is reserved.
#define MSGPACK_NO_BOOST
#include <stddef.h>  // msgpack's parse headers use ::size_t without including it

#include <msgpack/unpack.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/rooms/codec_internal.hpp"

namespace nshost::rooms::detail {
namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Where the next decoded value goes, and the chain of open containers.
// Pointers into the tree stay valid: a container's vector only grows while
// none of its children is open.
class TreeBuilder {
 public:
  TreeBuilder(Value& root, int max_depth, std::string& error)
      : slot_(&root), max_depth_(std::min(max_depth, kMaxMessageDepth)), error_(error) {}

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  Value& slot() { return *slot_; }
  void set_slot(Value* v) { slot_ = v; }
  Value& top() { return *open_[depth_ - 1]; }
  bool has_open() const { return depth_ > 0; }

  // Opens the container at the current slot; false past the depth cap.
  bool open(Value::Kind kind, const char* codec) {
    if (depth_ >= max_depth_) {
      return fail(std::string(codec) + ": nested deeper than " + std::to_string(max_depth_));
    }
    slot_->kind = kind;
    open_[depth_++] = slot_;
    return true;
  }
  void close() { --depth_; }

 private:
  Value* slot_;
  std::array<Value*, kMaxMessageDepth> open_;
  int depth_ = 0;
  int max_depth_;
  std::string& error_;
};

// msgpack-c's visitor: every call returns false to stop the parse.
class MsgpackVisitor {
 public:
  MsgpackVisitor(std::string_view input, int max_depth, Value& out, std::string& error)
      : input_bytes_(input.size()), tree_(out, max_depth, error) {}

  bool visit_nil() { return scalar([](Value&) {}); }
  bool visit_boolean(bool b) {
    return scalar([&](Value& v) {
      v.kind = Value::Kind::boolean;
      v.boolean = b;
    });
  }
  bool visit_positive_integer(uint64_t n) {
    if (n > kInt64Max) return tree_.fail("msgpack: integer " + std::to_string(n) + " is outside int64");
    return scalar([&](Value& v) {
      v.kind = Value::Kind::integer;
      v.integer = static_cast<int64_t>(n);
    });
  }
  bool visit_negative_integer(int64_t n) {
    return scalar([&](Value& v) {
      v.kind = Value::Kind::integer;
      v.integer = n;
    });
  }
  bool visit_float32(float x) { return visit_float64(x); }
  bool visit_float64(double x) {
    return scalar([&](Value& v) {
      v.kind = Value::Kind::number;
      v.number = x;
    });
  }
  bool visit_str(const char* p, uint32_t size) {
    return scalar([&](Value& v) {
      v.kind = Value::Kind::string;
      v.string.assign(p, size);
    });
  }
  bool visit_bin(const char* p, uint32_t size) { return visit_str(p, size); }
  bool visit_ext(const char*, uint32_t) { return tree_.fail("msgpack: ext values are not accepted"); }

  bool start_array(uint32_t n) {
    if (!charge(n)) return false;
    if (!tree_.open(Value::Kind::array, "msgpack")) return false;
    tree_.top().items.reserve(n);
    return true;
  }
  bool start_array_item() {
    tree_.set_slot(&tree_.top().items.emplace_back());
    return true;
  }
  bool end_array_item() { return true; }
  bool end_array() {
    tree_.close();
    return true;
  }
  bool start_map(uint32_t n) {
    if (!charge(uint64_t{2} * n)) return false;
    if (!tree_.open(Value::Kind::map, "msgpack")) return false;
    tree_.top().entries.reserve(n);
    return true;
  }
  bool start_map_key() {
    tree_.set_slot(&tree_.top().entries.emplace_back().first);
    return true;
  }
  bool end_map_key() {
    Value::Kind k = tree_.top().entries.back().first.kind;
    if (k != Value::Kind::string && k != Value::Kind::integer) {
      return tree_.fail("msgpack: a map key must be a string or an integer");
    }
    return true;
  }
  bool start_map_value() {
    tree_.set_slot(&tree_.top().entries.back().second);
    return true;
  }
  bool end_map_value() { return true; }
  bool end_map() {
    tree_.close();
    return true;
  }
  void parse_error(size_t, size_t error_offset) {
    tree_.fail("msgpack: invalid byte at offset " + std::to_string(error_offset));
  }
  void insufficient_bytes(size_t, size_t) { tree_.fail("msgpack: truncated"); }
  bool referenced() const { return false; }
  void set_referenced(bool) {}

 private:
  template <class F>
  bool scalar(F&& set) {
    set(tree_.slot());
    return true;
  }
  // Every declared item takes at least one byte of input, so a document
  // declares at most as many items as it has bytes: a 5-byte header that
  // claims 2^32 entries is refused before anything is reserved.
  bool charge(uint64_t items) {
    declared_ += items;
    if (declared_ > input_bytes_) {
      return tree_.fail("msgpack: containers declare " + std::to_string(declared_) + " items in " +
                        std::to_string(input_bytes_) + " bytes");
    }
    return true;
  }

  uint64_t input_bytes_;
  uint64_t declared_ = 0;
  TreeBuilder tree_;
};

// nlohmann's SAX events; containers arrive without a size, so vectors grow.
class JsonSax {
 public:
  using json = nlohmann::json;
  JsonSax(int max_depth, Value& out, std::string& error) : tree_(out, max_depth, error) {}

  bool null() { return value([](Value&) {}); }
  bool boolean(bool b) {
    return value([&](Value& v) {
      v.kind = Value::Kind::boolean;
      v.boolean = b;
    });
  }
  bool number_integer(json::number_integer_t n) {
    return value([&](Value& v) {
      v.kind = Value::Kind::integer;
      v.integer = n;
    });
  }
  bool number_unsigned(json::number_unsigned_t n) {
    if (n > kInt64Max) return tree_.fail("json: integer " + std::to_string(n) + " is outside int64");
    return number_integer(static_cast<int64_t>(n));
  }
  bool number_float(json::number_float_t x, const json::string_t& text) {
    // nlohmann reads an integer literal too large for 64 bits as a float.
    if (text.find_first_of(".eE") == std::string::npos) {
      return tree_.fail("json: integer " + text.substr(0, 40) + " is outside int64");
    }
    if (!std::isfinite(x)) return tree_.fail("json: number " + text.substr(0, 40) + " is out of range");
    return value([&](Value& v) {
      v.kind = Value::Kind::number;
      v.number = x;
    });
  }
  bool string(json::string_t& s) {
    return value([&](Value& v) {
      v.kind = Value::Kind::string;
      v.string = std::move(s);
    });
  }
  bool binary(json::binary_t&) { return tree_.fail("json: binary values are not accepted"); }
  bool start_object(std::size_t) {
    place();
    return tree_.open(Value::Kind::map, "json");
  }
  bool key(json::string_t& k) {
    auto& entry = tree_.top().entries.emplace_back();
    entry.first.kind = Value::Kind::string;
    entry.first.string = std::move(k);
    tree_.set_slot(&entry.second);
    return true;
  }
  bool end_object() {
    tree_.close();
    return true;
  }
  bool start_array(std::size_t) {
    place();
    return tree_.open(Value::Kind::array, "json");
  }
  bool end_array() {
    tree_.close();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    // what(): "[json.exception.parse_error.101] parse error at line 1, column
    // 4: syntax error while parsing value - invalid literal; last read: '...'"
    // or "[json.exception.out_of_range.406] number overflow parsing '1e400'".
    std::string_view what(ex.what());
    size_t reason = what.find(": ");
    if (reason == std::string_view::npos) reason = what.find("] ");
    if (reason != std::string_view::npos) what = what.substr(reason + 2);
    what = what.substr(0, what.find("; last read"));
    return tree_.fail("json: " + std::string(what.substr(0, 160)) + " (byte " + std::to_string(position) + ")");
  }

 private:
  // Points the slot at the next array item; a map's slot was set by key().
  void place() {
    if (tree_.has_open() && tree_.top().kind == Value::Kind::array) {
      tree_.set_slot(&tree_.top().items.emplace_back());
    }
  }
  template <class F>
  bool value(F&& set) {
    place();
    set(tree_.slot());
    return true;
  }

  TreeBuilder tree_;
};

}  // namespace

bool decode_msgpack(std::string_view bytes, int max_depth, Value& out, std::string& error) {
  out = Value{};
  error.clear();
  MsgpackVisitor visitor(bytes, max_depth, out, error);
  size_t offset = 0;
  try {
    if (!msgpack::parse(bytes.data(), bytes.size(), offset, visitor)) {
      if (error.empty()) error = "msgpack: malformed";
      return false;
    }
  } catch (const std::exception& e) {
    error = std::string("msgpack: ") + e.what();
    return false;
  }
  if (offset != bytes.size()) {
    error = "msgpack: " + std::to_string(bytes.size() - offset) + " trailing bytes after the value";
    return false;
  }
  return true;
}

bool decode_json(std::string_view bytes, int max_depth, Value& out, std::string& error) {
  out = Value{};
  error.clear();
  JsonSax sax(max_depth, out, error);
  try {
    if (!nlohmann::json::sax_parse(bytes.begin(), bytes.end(), &sax)) {
      if (error.empty()) error = "json: malformed";
      return false;
    }
  } catch (const std::exception& e) {
    error = std::string("json: ") + e.what();
    return false;
  }
  return true;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  auto cont = [&](size_t at, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return at < n && p[at] >= lo && p[at] <= hi;
  };
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (!cont(i + 1)) return false;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      if (!cont(i + 1, lo, hi) || !cont(i + 2)) return false;
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      if (!cont(i + 1, lo, hi) || !cont(i + 2) || !cont(i + 3)) return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace nshost::rooms::detail
