#include "runtime/roles/join_fetch.hpp"

#include "runtime/script/bundle.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost {

bool JoinFetch::hold(uint8_t channel_id, std::string_view bytes) {
  if (held_bytes_ + bytes.size() > max_held_bytes_) return false;
  held_bytes_ += bytes.size();
  held_.emplace_back(channel_id, std::string(bytes));
  return true;
}

std::vector<std::pair<uint8_t, std::string>> JoinFetch::take_held() {
  auto held = std::move(held_);
  held_.clear();
  held_bytes_ = 0;
  return held;
}

void JoinFetch::expect(std::string hash, uint32_t size) {
  hash_ = std::move(hash);
  size_ = size;
  bytes_.clear();
  bytes_.reserve(size);
}

JoinFetch::Part JoinFetch::add_part(std::string_view message, std::string& failure) {
  wire::BundlePart part;
  std::string error;
  if (!wire::decode_bundle_part(message, part, error)) {
    failure = "bad_bundle: " + error;
    return Part::failed;
  }
  if (part.offset != bytes_.size()) {
    failure = "bad_bundle: part at offset " + std::to_string(part.offset) + ", expected " +
              std::to_string(bytes_.size());
    return Part::failed;
  }
  if (part.bytes.size() > size_ - bytes_.size()) {
    failure = "bundle_too_large (more bytes than the " + std::to_string(size_) + " announced)";
    return Part::failed;
  }
  bytes_.append(part.bytes);
  if (bytes_.size() < size_) return Part::incomplete;
  if (std::string got = sha256(bytes_); got != hash_) {
    failure = "bad_hash: the bundle's SHA-256 is " + to_hex(got) + ", announced " + to_hex(hash_);
    return Part::failed;
  }
  return Part::complete;
}

std::string JoinFetch::take_bundle() {
  std::string bytes = std::move(bytes_);
  bytes_.clear();
  return bytes;
}

void JoinFetch::clear() {
  bytes_.clear();
  held_.clear();
  held_bytes_ = 0;
}

}  // namespace nshost
