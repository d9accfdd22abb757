#pragma once
// Big-endian byte writer and bounds-checked reader shared by the codecs of
// bytes that cross the network (wire.cpp, bundle.cpp). A Reader never reads
// past its input: every getter returns false instead.
#include <cstdint>
#include <string>
#include <string_view>

namespace nshost {

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void bytes(std::string_view b) { out_.append(b); }
  void reserve(size_t n) { out_.reserve(n); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool u8(uint8_t& v) {
    if (in_.size() - pos_ < 1) return false;
    v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool u16(uint16_t& v) {
    uint8_t a, b;
    if (!u8(a) || !u8(b)) return false;
    v = static_cast<uint16_t>((a << 8) | b);
    return true;
  }
  bool u32(uint32_t& v) {
    uint16_t a, b;
    if (!u16(a) || !u16(b)) return false;
    v = (static_cast<uint32_t>(a) << 16) | b;
    return true;
  }
  bool bytes(size_t n, std::string_view& v) {
    if (in_.size() - pos_ < n) return false;
    v = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace nshost
