#pragma once
// The bytes net.* holds for one script (queued sends, unread data, HTTP
// bodies, handle records), charged against the script's memory cap
// (ScriptHost::charge_external) so a script cannot make the host hold more
// than --memory-limit through sockets. Shared by the NetState and the write
// requests that may outlive it; detach() when the cap's owner goes away.
#include <cstddef>
#include <functional>
#include <memory>
#include <utility>

namespace nshost {

class NetMemory {
 public:
  // `charge` returns false when the bytes do not fit (nothing charged);
  // either may be empty: then nothing is limited.
  NetMemory(std::function<bool(size_t)> charge, std::function<void(size_t)> release)
      : charge_(std::move(charge)), release_(std::move(release)) {}
  NetMemory(const NetMemory&) = delete;
  NetMemory& operator=(const NetMemory&) = delete;

  bool charge(size_t bytes) {
    if (charge_ && !charge_(bytes)) return false;
    held_ += bytes;
    return true;
  }
  void release(size_t bytes) {
    if (bytes > held_) bytes = held_;
    held_ -= bytes;
    if (release_) release_(bytes);
  }
  // Gives back everything still held; later charges always succeed and
  // releases reach no one.
  void detach() {
    if (release_) release_(held_);
    charge_ = nullptr;
    release_ = nullptr;
  }
  size_t held() const { return held_; }

 private:
  std::function<bool(size_t)> charge_;
  std::function<void(size_t)> release_;
  size_t held_ = 0;
};

// Bytes charged to a NetMemory, released when this is destroyed.
class Charged {
 public:
  Charged() = default;
  explicit Charged(std::shared_ptr<NetMemory> memory) : memory_(std::move(memory)) {}
  ~Charged() { reset(); }
  Charged(Charged&& other) noexcept : memory_(std::move(other.memory_)), bytes_(std::exchange(other.bytes_, 0)) {}
  Charged& operator=(Charged&& other) noexcept {
    if (this != &other) {
      reset();
      memory_ = std::move(other.memory_);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }

  // False (nothing charged) when the bytes do not fit under the cap.
  bool grow(size_t bytes) {
    if (memory_ && !memory_->charge(bytes)) return false;
    bytes_ += bytes;
    return true;
  }
  void shrink(size_t bytes) {
    if (bytes > bytes_) bytes = bytes_;
    bytes_ -= bytes;
    if (memory_) memory_->release(bytes);
  }
  void reset() { shrink(bytes_); }
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<NetMemory> memory_;
  size_t bytes_ = 0;
};

}  // namespace nshost
