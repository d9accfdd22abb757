// The schema of a room's state: types, canonical scalar forms, and the
// schema's encoding in a snapshot (docs/protocol.md "State sync: schema").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "runtime/state/state_bytes.hpp"
#include "runtime/state/state_codec.hpp"

namespace nshost::state {

namespace {

const Type& any_type() {
  static const Type any;
  return any;
}

// The shortest text that reads back to the same double (for messages).
std::string number_text(double d) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

std::string scalar_text(const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::boolean: return v.boolean ? "true" : "false";
    case Scalar::Kind::integer: return std::to_string(v.integer);
    case Scalar::Kind::number: return number_text(v.number);
    case Scalar::Kind::string: return "a string";
  }
  return "?";
}

const char* kind_article(Scalar::Kind kind) {
  switch (kind) {
    case Scalar::Kind::boolean: return "a boolean";
    case Scalar::Kind::integer: return "an integer";
    case Scalar::Kind::number: return "a number";
    case Scalar::Kind::string: return "a string";
  }
  return "a value";
}

bool integer_range(Type::Kind kind, int64_t& lo, int64_t& hi) {
  switch (kind) {
    case Type::Kind::i8: lo = INT8_MIN, hi = INT8_MAX; return true;
    case Type::Kind::u8: lo = 0, hi = UINT8_MAX; return true;
    case Type::Kind::i16: lo = INT16_MIN, hi = INT16_MAX; return true;
    case Type::Kind::u16: lo = 0, hi = UINT16_MAX; return true;
    case Type::Kind::i32: lo = INT32_MIN, hi = INT32_MAX; return true;
    case Type::Kind::u32: lo = 0, hi = UINT32_MAX; return true;
    case Type::Kind::i64: lo = INT64_MIN, hi = INT64_MAX; return true;
    default: return false;
  }
}

void sort_fields(Type& type) {
  if (type.kind == Type::Kind::structure) {
    std::sort(type.fields.begin(), type.fields.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& field : type.fields)
      if (field.second) sort_fields(*field.second);
  } else if (type.kind == Type::Kind::map && type.value) {
    sort_fields(*type.value);
  }
}

// Types nest at most this deep: the root's type and one per node below it.
constexpr uint32_t kMaxTypeDepth = kMaxDepth + 1;

bool validate(const Type& type, uint32_t depth, std::string& error) {
  if (depth > kMaxTypeDepth) {
    error = "schema nested deeper than " + std::to_string(kMaxTypeDepth);
    return false;
  }
  if (type.kind == Type::Kind::map) {
    if (!type.value) {
      error = "schema: a map without a value type";
      return false;
    }
    return validate(*type.value, depth + 1, error);
  }
  if (type.kind != Type::Kind::structure) return true;
  if (type.fields.size() > kMaxStructFields) {
    error = "schema: a struct with " + std::to_string(type.fields.size()) + " fields (at most " +
            std::to_string(kMaxStructFields) + ")";
    return false;
  }
  for (size_t i = 0; i < type.fields.size(); ++i) {
    if (i > 0 && type.fields[i - 1].first == type.fields[i].first) {
      error = "schema: field '" + type.fields[i].first + "' twice";
      return false;
    }
    if (!type.fields[i].second) {
      error = "schema: field '" + type.fields[i].first + "' without a type";
      return false;
    }
    if (!validate(*type.fields[i].second, depth + 1, error)) return false;
  }
  return true;
}

void encode_type(const Type& type, std::string& out) {
  bytes::put_u8(out, static_cast<uint8_t>(type.kind));
  if (type.kind == Type::Kind::structure) {
    bytes::put_varint(out, type.fields.size());
    for (const auto& [name, field] : type.fields) {
      bytes::put_string(out, name);
      encode_type(*field, out);
    }
  } else if (type.kind == Type::Kind::map) {
    encode_type(*type.value, out);
  }
}

std::unique_ptr<Type> decode_type(bytes::StateReader& in, uint32_t depth) {
  if (depth > kMaxTypeDepth) {
    in.fail("nested deeper than " + std::to_string(kMaxTypeDepth));
    return nullptr;
  }
  uint8_t tag = 0;
  if (!in.u8(tag)) return nullptr;
  if (tag > static_cast<uint8_t>(Type::Kind::map)) {
    in.fail("unknown type tag " + std::to_string(tag));
    return nullptr;
  }
  auto type = std::make_unique<Type>();
  type->kind = static_cast<Type::Kind>(tag);
  if (type->kind == Type::Kind::structure) {
    uint64_t count;
    if (!in.varint(count)) return nullptr;
    if (count > kMaxStructFields) {
      in.fail("a struct with " + std::to_string(count) + " fields (at most " + std::to_string(kMaxStructFields) + ")");
      return nullptr;
    }
    type->fields.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
      std::string_view name;
      if (!in.string(name)) return nullptr;
      if (i > 0 && !(type->fields.back().first < name)) {
        in.fail("field names not in strictly increasing order");
        return nullptr;
      }
      auto field = decode_type(in, depth + 1);
      if (!field) return nullptr;
      type->fields.emplace_back(std::string(name), std::move(field));
    }
  } else if (type->kind == Type::Kind::map) {
    type->value = decode_type(in, depth + 1);
    if (!type->value) return nullptr;
  }
  return type;
}

}  // namespace

int Type::field_index(std::string_view name) const {
  // The server's diff asks once per field per tick: structs are small, and a
  // length and first-byte test rejects most fields without a memcmp.
  if (fields.size() <= 16) {
    for (size_t i = 0; i < fields.size(); ++i) {
      const std::string& f = fields[i].first;
      if (f.size() == name.size() && (name.empty() || (f[0] == name[0] && f.compare(name) == 0)))
        return static_cast<int>(i);
    }
    return -1;
  }
  auto it = std::lower_bound(fields.begin(), fields.end(), name,
                             [](const auto& field, std::string_view n) { return std::string_view(field.first) < n; });
  if (it == fields.end() || it->first != name) return -1;
  return static_cast<int>(it - fields.begin());
}

const char* type_name(Type::Kind kind) {
  switch (kind) {
    case Type::Kind::any: return "any";
    case Type::Kind::boolean: return "bool";
    case Type::Kind::f32: return "f32";
    case Type::Kind::f64: return "f64";
    case Type::Kind::i8: return "i8";
    case Type::Kind::u8: return "u8";
    case Type::Kind::i16: return "i16";
    case Type::Kind::u16: return "u16";
    case Type::Kind::i32: return "i32";
    case Type::Kind::u32: return "u32";
    case Type::Kind::i64: return "i64";
    case Type::Kind::string: return "string";
    case Type::Kind::structure: return "struct";
    case Type::Kind::map: return "map";
  }
  return "?";
}

std::optional<Type::Kind> scalar_kind_from_name(std::string_view name) {
  for (int k = static_cast<int>(Type::Kind::any); k <= static_cast<int>(Type::Kind::string); ++k) {
    auto kind = static_cast<Type::Kind>(k);
    if (name == type_name(kind)) return kind;
  }
  return std::nullopt;
}

Schema::Schema() : root_(std::make_shared<const Type>()) {}

Schema::Schema(std::unique_ptr<Type> root) {
  if (!root) root = std::make_unique<Type>();
  sort_fields(*root);
  root_ = std::shared_ptr<const Type>(std::move(root));
}

std::optional<Schema> Schema::from_type(std::unique_ptr<Type> root, std::string& error) {
  if (!root) root = std::make_unique<Type>();
  if (root->is_scalar()) {
    error = std::string("schema: the root is a ") + type_name(root->kind) + ", not a table";
    return std::nullopt;
  }
  sort_fields(*root);
  if (!validate(*root, 0, error)) return std::nullopt;
  return Schema(std::move(root));
}

const Type* Schema::child_type(const Type& parent, const Key& key) {
  switch (parent.kind) {
    case Type::Kind::any: return &any_type();
    case Type::Kind::map: return parent.value.get();
    case Type::Kind::structure: {
      if (key.kind != Key::Kind::string) return nullptr;
      int i = parent.field_index(key.string);
      return i < 0 ? nullptr : parent.fields[static_cast<size_t>(i)].second.get();
    }
    default: return nullptr;
  }
}

std::optional<Scalar> Schema::canonical(const Type& type, const Scalar& value, std::string& error) {
  Scalar out = value;
  if (!canonicalize(type, out, error)) return std::nullopt;
  return out;
}

bool Schema::canonicalize(const Type& type, Scalar& value, std::string& error) {
  auto refuse = [&](bool range) {
    error = range ? scalar_text(value) + " does not fit " + type_name(type.kind)
                  : std::string(kind_article(value.kind)) + " is not a " + type_name(type.kind);
    return false;
  };
  switch (type.kind) {
    case Type::Kind::any: return true;
    case Type::Kind::boolean:
      return value.kind == Scalar::Kind::boolean || refuse(false);
    case Type::Kind::string:
      return value.kind == Scalar::Kind::string || refuse(false);
    case Type::Kind::f32:
    case Type::Kind::f64: {
      double d;
      if (value.kind == Scalar::Kind::number) d = value.number;
      else if (value.kind == Scalar::Kind::integer) d = static_cast<double>(value.integer);
      else return refuse(false);
      if (type.kind == Type::Kind::f32) {
        if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
          return refuse(true);
        d = static_cast<double>(static_cast<float>(d));
      }
      value.kind = Scalar::Kind::number;
      value.number = d;
      value.integer = 0;
      return true;
    }
    case Type::Kind::structure:
    case Type::Kind::map:
      error = std::string(kind_article(value.kind)) + " is not a " + type_name(type.kind);
      return false;
    default: break;
  }
  int64_t lo = 0, hi = 0;
  integer_range(type.kind, lo, hi);
  int64_t i;
  if (value.kind == Scalar::Kind::integer) {
    i = value.integer;
  } else if (value.kind == Scalar::Kind::number) {
    double d = value.number;
    // [-2^63, 2^63): the doubles that convert to int64 without overflow.
    if (!(d == std::trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return refuse(true);
    i = static_cast<int64_t>(d);
  } else {
    return refuse(false);
  }
  if (i < lo || i > hi) return refuse(true);
  value.kind = Scalar::Kind::integer;
  value.integer = i;
  value.number = 0;
  return true;
}

void Schema::encode(std::string& out) const { encode_type(*root_, out); }

std::optional<Schema> Schema::decode(std::string_view data, std::string& error) {
  error.clear();
  bytes::StateReader in(data, error, "schema");
  auto root = decode_type(in, 0);
  if (!root) return std::nullopt;
  if (!in.done()) {
    in.fail(std::to_string(in.remaining()) + " trailing bytes");
    return std::nullopt;
  }
  if (root->is_scalar()) {
    in.fail(std::string("the root is a ") + type_name(root->kind) + ", not a table");
    return std::nullopt;
  }
  return Schema(std::move(root));
}

}  // namespace nshost::state
