#pragma once
// The little-endian integers and LEB128 varints of the state-sync wire
// (docs/protocol.md "State sync"), internal to runtime/state. StateReader
// never reads past its input: a getter that would returns false and names
// the reason once in `error`.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace nshost::state::bytes {

inline void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void put_le(std::string& out, uint64_t v, int n) {
  char b[8];
  for (int i = 0; i < n; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, static_cast<size_t>(n));
}
// Writes `v` as unsigned LEB128 into `b` (at least 10 bytes); returns the length.
inline int varint_bytes(uint64_t v, char* b) {
  int n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<char>(v);
  return n;
}
inline void put_varint(std::string& out, uint64_t v) {
  if (v < 0x80) {
    out.push_back(static_cast<char>(v));
    return;
  }
  char b[10];
  out.append(b, static_cast<size_t>(varint_bytes(v, b)));
}
inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }
inline void put_zigzag(std::string& out, int64_t v) { put_varint(out, zigzag(v)); }
inline void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}
inline uint64_t double_bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}
inline double bits_double(uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A varint count written before its items when the count is known only
// after them: one placeholder byte, widened in place when the count needs more.
class CountSlot {
 public:
  explicit CountSlot(std::string& out) : out_(out), at_(out.size()) { out.push_back(0); }
  void finish(uint64_t count) {
    if (count < 0x80) {
      out_[at_] = static_cast<char>(count);
      return;
    }
    char b[10];
    int n = varint_bytes(count, b);
    out_[at_] = b[0];
    out_.insert(at_ + 1, b + 1, static_cast<size_t>(n - 1));
  }

 private:
  std::string& out_;
  size_t at_;
};

class StateReader {
 public:
  StateReader(std::string_view in, std::string& error, const char* what) : in_(in), error_(error), what_(what) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }

  bool u8(uint8_t& v) {
    v = 0;
    if (remaining() < 1) return truncated();
    v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool le(uint64_t& v, int n) {
    v = 0;
    if (remaining() < static_cast<size_t>(n)) return truncated();
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += static_cast<size_t>(n);
    return true;
  }
  // At most 10 bytes; the 10th may only carry bit 63 (so it ends the varint).
  bool varint(uint64_t& v) {
    v = 0;
    for (int i = 0;; ++i) {
      if (remaining() < 1) return truncated();
      uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (i == 9 && b > 1) return fail("varint overflows 64 bits");
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) return true;
    }
  }
  bool zigzag(int64_t& v) {
    v = 0;
    uint64_t u;
    if (!varint(u)) return false;
    v = unzigzag(u);
    return true;
  }
  bool string(std::string_view& s) {
    uint64_t n;
    if (!varint(n)) return false;
    if (n > remaining()) return truncated();
    s = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }
  bool bytes(size_t n, std::string_view& s) {
    if (n > remaining()) return truncated();
    s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // Sets the error (the first one wins) and returns false.
  bool fail(std::string_view why) {
    if (error_.empty()) {
      error_ = what_;
      error_ += ": ";
      error_ += why;
      error_ += " (at byte " + std::to_string(pos_) + ")";
    }
    return false;
  }
  bool truncated() { return fail("truncated"); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  std::string& error_;
  const char* what_;
};

}  // namespace nshost::state::bytes
