#include "runtime/cluster/seat_reservations.hpp"

#include <openssl/rand.h>

namespace nshost::cluster {
namespace {

constexpr int64_t kRememberGoneMs = 60'000;

std::string openssl_random(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) return {};
  return out;
}

std::string to_hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

SeatReservations::SeatReservations(size_t max_reservations, std::function<std::string(size_t)> random_bytes)
    : max_(max_reservations), random_bytes_(random_bytes ? std::move(random_bytes) : openssl_random) {}

std::optional<std::string> SeatReservations::reserve(uint64_t room_id, RoomSeatRequest request, int64_t now_ms,
                                                     uint32_t lifetime_ms, std::string& error) {
  expire(now_ms);
  if (open_.size() >= max_) {
    error = "too many seat reservations";
    return std::nullopt;
  }
  std::string raw = random_bytes_(kTokenBytes);
  if (raw.size() != kTokenBytes) {
    error = "no randomness";
    return std::nullopt;
  }
  std::string token = to_hex(raw);
  if (open_.count(token) || gone_.count(token)) {
    error = "no randomness";  // a repeated token: the generator is broken
    return std::nullopt;
  }
  Reservation r;
  r.room_id = room_id;
  r.request = std::move(request);
  r.deadline_ms = now_ms + lifetime_ms;
  deadlines_.emplace(r.deadline_ms, token);
  open_.emplace(token, std::move(r));
  return token;
}

bool SeatReservations::redeem(std::string_view token, int64_t now_ms, Reservation& out, std::string& reason) {
  expire(now_ms);
  std::string key(token);
  if (auto it = open_.find(key); it != open_.end()) {
    out = std::move(it->second);
    open_.erase(it);
    remember(key, Gone::used, now_ms);
    return true;
  }
  if (auto it = gone_.find(key); it != gone_.end()) {
    reason = it->second.first == Gone::used ? "seat token used" : "seat token expired";
    return false;
  }
  reason = "seat token unknown";
  return false;
}

std::vector<Reservation> SeatReservations::expire(int64_t now_ms) {
  std::vector<Reservation> out;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_ms) {
    std::string token = std::move(deadlines_.begin()->second);
    deadlines_.erase(deadlines_.begin());
    auto it = open_.find(token);
    if (it == open_.end()) continue;  // redeemed or forgotten
    out.push_back(std::move(it->second));
    open_.erase(it);
    remember(token, Gone::expired, now_ms);
  }
  while (!gone_order_.empty() && gone_order_.begin()->first <= now_ms) {
    auto it = gone_.find(gone_order_.begin()->second);
    if (it != gone_.end() && it->second.second <= now_ms) gone_.erase(it);
    gone_order_.erase(gone_order_.begin());
  }
  return out;
}

void SeatReservations::remember(const std::string& token, Gone why, int64_t now_ms) {
  while (gone_.size() >= max_ && !gone_order_.empty()) {
    gone_.erase(gone_order_.begin()->second);
    gone_order_.erase(gone_order_.begin());
  }
  int64_t until = now_ms + kRememberGoneMs;
  gone_[token] = {why, until};
  gone_order_.emplace(until, token);
}

std::optional<int64_t> SeatReservations::next_deadline_ms() const {
  std::optional<int64_t> best;
  for (const auto& [token, r] : open_)
    if (!best || r.deadline_ms < *best) best = r.deadline_ms;
  return best;
}

size_t SeatReservations::reserved_in(uint64_t room_id) const {
  size_t n = 0;
  for (const auto& [token, r] : open_) n += r.room_id == room_id ? 1 : 0;
  return n;
}

void SeatReservations::forget_room(uint64_t room_id) {
  for (auto it = open_.begin(); it != open_.end();) {
    if (it->second.room_id == room_id) it = open_.erase(it);
    else ++it;
  }
}

}  // namespace nshost::cluster
