#pragma once
// What a client keeps between a server's welcome and the moment its script
// can take messages (docs/shards.md): the destination's script bundle as it
// arrives in parts, checked against the announced size and SHA-256, and the
// data messages that arrive meanwhile (before the welcome, or while the
// bundle is fetched), held in order up to a byte budget. Pure state: no I/O,
// no timers; the ClientRole asks for the bundle, stores it in the cache and
// delivers the held messages. Not thread-safe (one loop).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nshost {

class JoinFetch {
 public:
  // Held messages beyond this many bytes are dropped (the caller logs it).
  explicit JoinFetch(size_t max_held_bytes) : max_held_bytes_(max_held_bytes) {}

  // Holds a data message that arrived on ENet channel channel_id; false
  // (and not held) when it would exceed the budget.
  bool hold(uint8_t channel_id, std::string_view bytes);
  // The held messages in arrival order; holds none afterwards.
  std::vector<std::pair<uint8_t, std::string>> take_held();

  // Expects a bundle of size bytes whose raw SHA-256 is hash.
  void expect(std::string hash, uint32_t size);
  enum class Part { incomplete, complete, failed };
  // Adds one encoded bundle_part message. failed: `failure` says why, in the
  // hop-failure vocabulary ("bad_bundle: ...", "bundle_too_large ...",
  // "bad_hash: ..."). complete: the bytes match; take_bundle() has them.
  Part add_part(std::string_view message, std::string& failure);
  std::string take_bundle();
  const std::string& hash() const { return hash_; }
  uint32_t size() const { return size_; }

  // Forgets the bundle and the held messages (a new connection).
  void clear();

 private:
  size_t max_held_bytes_;
  std::string hash_;
  uint32_t size_ = 0;
  std::string bytes_;
  std::vector<std::pair<uint8_t, std::string>> held_;
  size_t held_bytes_ = 0;
};

}  // namespace nshost
