#pragma once
// State sync on the wire (docs/protocol.md "State sync", byte by byte):
// the schema a room declares (room.define_state), the frames of seed 003's
// state.snapshot / state.patch / state.ack / state.resync, and the ops
// inside a snapshot or patch: a list of node updates, each self-contained
// (it names its node by ref), so a client's patch can be the concatenation
// of updates encoded once per room. Pure C++: no Lua, no I/O.
//
// Decoders take untrusted bytes: they never read out of bounds, never
// allocate more than a bounded multiple of the input (the tree's budgets
// bound what is kept), refuse nesting past kMaxDepth, and report one
// readable error.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/state/state_tree.hpp"

namespace nshost::state {

inline constexpr uint32_t kMaxDepth = 64;        // nodes below the root
inline constexpr uint32_t kMaxStructFields = 62;  // fields of one typed struct

// One type of the schema. `any` holds anything (scalars and untyped tables);
// a struct has named fields (field i = the i-th name in bytewise order);
// a map has string or integer keys and values of one type.
struct Type {
  enum class Kind : uint8_t { any, boolean, f32, f64, i8, u8, i16, u16, i32, u32, i64, string, structure, map };
  Kind kind = Kind::any;
  std::vector<std::pair<std::string, std::unique_ptr<Type>>> fields;  // structure, sorted by name
  std::unique_ptr<Type> value;                                      // map
  bool is_scalar() const { return kind != Kind::any && kind != Kind::structure && kind != Kind::map; }
  // The field's index, or -1.
  int field_index(std::string_view name) const;
};
const char* type_name(Type::Kind kind);  // "f32", "map", ...
// The type names room.define_state accepts for scalars ("f32", "u8", "bool",
// "string", "any", ...); nullopt for another name.
std::optional<Type::Kind> scalar_kind_from_name(std::string_view name);

// The room's schema: the root type (a structure after room.define_state,
// else `any`). The same Schema serves every tree of the room.
class Schema {
 public:
  Schema();  // untyped: root `any`
  // Sorts every struct's fields by name. `root` must be valid (from_type
  // checks); null means `any`.
  explicit Schema(std::unique_ptr<Type> root);
  // A schema from a type built by the caller (room.define_state), checked:
  // the root a struct, map or any; at most kMaxStructFields fields per
  // struct, names unique; a map has a value type; nesting at most
  // kMaxDepth + 1 types deep. nullopt with `error` otherwise.
  static std::optional<Schema> from_type(std::unique_ptr<Type> root, std::string& error);
  const Type& root() const { return *root_; }
  bool typed() const { return root_->kind != Type::Kind::any; }
  // The type of `key`'s value in a node of type `parent`; null when the key
  // is not admitted (a struct's unknown field). Maps and `any` admit any key.
  static const Type* child_type(const Type& parent, const Key& key);
  // Converts a value for a field of scalar type `type` to its canonical
  // form: f32 rounded through float, integer types range-checked (a float
  // with an integral value becomes the integer), bool and string by kind.
  // `any` accepts every scalar as is. nullopt with `error` ("300 does not
  // fit u8", "a string is not a f32") otherwise.
  static std::optional<Scalar> canonical(const Type& type, const Scalar& value, std::string& error);
  // The same in place: true and `value` canonical, or false with `error` and
  // `value` as it was.
  static bool canonicalize(const Type& type, Scalar& value, std::string& error);

  // The schema as carried in a snapshot, and back (untrusted input: bounded
  // depth and size).
  void encode(std::string& out) const;
  static std::optional<Schema> decode(std::string_view bytes, std::string& error);

 private:
  std::shared_ptr<const Type> root_;
};

// Frames (the first byte of a packet on the room channels; a catalog
// message never starts with these bytes: msgpack maps begin 0x80-0x8f,
// 0xde, 0xdf; json with '{' or whitespace).
enum class FrameKind : uint8_t { snapshot = 0x01, patch = 0x02, ack = 0x03, resync = 0x04 };
bool is_state_frame(std::string_view packet);

enum class ResyncReason : uint8_t { gap = 1, checksum = 2, decode = 3, requested = 4 };
const char* resync_reason_name(ResyncReason reason);  // "gap", "checksum", ...

// The wire's seq is the low 16 bits of the room's per-client seq.
struct FrameHeader {
  FrameKind kind = FrameKind::patch;
  uint64_t room = 0;
  uint16_t seq = 0;          // snapshot, patch, ack
  uint32_t checksum = 0;     // snapshot, patch, ack
  ResyncReason reason = ResyncReason::requested;  // resync
};
// Writes a frame's header; for a snapshot, `schema` bytes follow (length
// prefixed), then the caller appends the ops.
void write_header(const FrameHeader& header, std::string& out, const Schema* schema = nullptr);
// Reads a frame's header. On success `rest` is what follows it (the ops)
// and, for a snapshot, `schema_bytes` the schema's encoding.
bool read_header(std::string_view packet, FrameHeader& header, std::string_view& schema_bytes,
                 std::string_view& rest, std::string& error);

// Writing node updates. Which entries of a root-level collection
// (an entity: a node-valued entry of a node-valued entry of the root) a
// client is shown; null admits everything.
using Admit = std::function<bool(uint32_t collection_ref, const Key& key)>;

// Appends one node update of node `ref` to `out`: each key of `set` with
// its current value in `tree` (a node: written whole, its ref and all its
// contents, entities filtered by `admit`), and each key of `removed` as a
// removal. A key of `set` absent from the tree is written as a removal; an
// entity of `set` that `admit` refuses is left out; keys a struct lacks are
// skipped; a `ref` not in the tree writes nothing. `admit` is called once per
// entity it would write (never for scalars or deeper nodes); null or empty admits all.
void write_update(const StateTree& tree, uint32_t ref, std::span<const Key> set, std::span<const Key> removed,
                  std::string& out, const Admit* admit = nullptr);
// Appends the update that rebuilds the whole tree (every root entry) as
// `admit` allows: a snapshot's ops.
void write_snapshot_ops(const StateTree& tree, std::string& out, const Admit* admit = nullptr);

// One change a decoded update made, for the client to mirror into Lua.
struct Change {
  enum class Kind : uint8_t { scalar, node, removed };
  Kind kind = Kind::scalar;
  uint32_t ref = 0;        // the node changed
  Key key;
  Scalar value;            // scalar
  uint32_t child = 0;      // node: the new node's ref (its contents follow as further changes)
};
// Applies every update in `ops` to `tree` in order, appending each change
// to `changes` (removing an absent key is no change). False with `error` on malformed bytes, an unknown ref, a
// value the schema refuses, or past the tree's budgets; the tree is then
// partly updated and must be rebuilt from a snapshot (the caller clears it
// and asks for state.resync) — the script's Lua mirror is only touched
// after a whole patch applied and its checksum matched.
bool apply_ops(StateTree& tree, std::string_view ops, std::vector<Change>& changes, std::string& error);

}  // namespace nshost::state
