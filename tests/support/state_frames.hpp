#pragma once
// A room's state as a server would hold it (a StateTree), for tests of the
// client's mirror: the test mutates it, and it writes the state.snapshot and
// state.patch frames a server would send (with the codec's own writers),
// and renders it as the tests' Lua render() does, to compare with r.state.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/state/state_codec.hpp"
#include "runtime/state/state_tree.hpp"

namespace nshost::test {

// The Lua side of the comparison: values rendered deterministically
// (sorted keys, floats marked, strings quoted without escapes).
inline constexpr const char* kStateRender = R"lua(
function render_state(v)
  if type(v) == "string" then return '"' .. v .. '"' end
  if math.type(v) == "float" then return ("%.17gf"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. render_state(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
)lua";

class ServerTree {
 public:
  using Key = state::Key;
  using Scalar = state::Scalar;

  explicit ServerTree(int64_t room, state::Schema schema = state::Schema()) : schema_(std::move(schema)), tree_(schema_), room_(room) {}

  state::StateTree& tree() { return tree_; }
  const state::Schema& schema() const { return schema_; }
  uint16_t seq() const { return seq_; }
  void set_seq(uint16_t seq) { seq_ = seq; }

  // A new node at `key` of `parent`; returns its ref.
  uint32_t node(uint32_t parent, const Key& key) {
    uint32_t ref = tree_.allocate_ref();
    std::string error;
    REQUIRE_MESSAGE(tree_.set_node(parent, key, ref, error), error);
    note(parent, key, false);
    created_.insert(ref);
    return ref;
  }
  void set(uint32_t ref, const Key& key, const Scalar& value) {
    std::string error;
    REQUIRE_MESSAGE(tree_.set_scalar(ref, key, value, error), error);
    note(ref, key, false);
  }
  void erase(uint32_t ref, const Key& key) {
    std::string error;
    REQUIRE_MESSAGE(tree_.erase(ref, key, error), error);
    note(ref, key, true);
  }

  // The ops of the changes since the last frame (one update per changed
  // node that existed before them), without a header.
  std::string patch_ops() {
    std::string ops;
    for (auto& [ref, change] : changes_)
      if (tree_.node(ref)) state::write_update(tree_, ref, change.first, change.second, ops);
    changes_.clear();
    created_.clear();
    return ops;
  }
  // A state.patch of the changes since the last frame: seq one up, the
  // checksum of the tree after them (`checksum_xor` corrupts it).
  std::string patch(uint32_t checksum_xor = 0) {
    std::string ops = patch_ops();
    return frame(state::FrameKind::patch, ++seq_, ops, checksum_xor);
  }
  std::string frame(state::FrameKind kind, uint16_t seq, const std::string& ops, uint32_t checksum_xor = 0) {
    state::FrameHeader h;
    h.kind = kind;
    h.room = static_cast<uint64_t>(room_);
    h.seq = seq;
    h.checksum = tree_.checksum() ^ checksum_xor;
    std::string out;
    state::write_header(h, out, kind == state::FrameKind::snapshot ? &schema_ : nullptr);
    return out + ops;
  }
  // A state.snapshot of the whole tree at the current seq.
  std::string snapshot() {
    changes_.clear();
    created_.clear();
    std::string ops;
    state::write_snapshot_ops(tree_, ops);
    return frame(state::FrameKind::snapshot, seq_, ops);
  }

  std::string render() const { return render_node(state::StateTree::kRoot); }

 private:
  void note(uint32_t ref, const Key& key, bool removed) {
    if (created_.count(ref)) return;  // written whole with its parent's update
    auto& [set, gone] = changes_[ref];
    auto drop = [&](std::vector<Key>& v) { v.erase(std::remove(v.begin(), v.end(), key), v.end()); };
    drop(set);
    drop(gone);
    (removed ? gone : set).push_back(key);
  }
  static std::string key_text(const Key& k) { return k.kind == Key::Kind::integer ? std::to_string(k.integer) : k.string; }
  static std::string scalar_text(const Scalar& v) {
    switch (v.kind) {
      case Scalar::Kind::boolean: return v.boolean ? "true" : "false";
      case Scalar::Kind::integer: return std::to_string(v.integer);
      case Scalar::Kind::number: {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17gf", v.number);
        return buf;
      }
      case Scalar::Kind::string: return "\"" + v.string + "\"";
    }
    return "?";
  }
  std::string render_node(uint32_t ref) const {
    const state::StateTree::Node* n = tree_.node(ref);
    REQUIRE(n);
    std::vector<std::pair<std::string, std::string>> parts;
    for (const auto& [k, e] : n->entries)
      parts.emplace_back(key_text(k), e.is_node() ? render_node(e.child) : scalar_text(e.scalar));
    std::sort(parts.begin(), parts.end());
    std::string out = "{";
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i].first + "=" + parts[i].second;
    return out + "}";
  }

  state::Schema schema_;
  state::StateTree tree_;
  int64_t room_;
  uint16_t seq_ = 0;
  std::map<uint32_t, std::pair<std::vector<Key>, std::vector<Key>>> changes_;
  std::set<uint32_t> created_;
};

}  // namespace nshost::test
