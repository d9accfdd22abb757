#pragma once
// The seats this server has reserved for clients coming from other servers
// (docs/cluster.md "Seat tokens"). In memory, bounded. A token is redeemed
// at most once and only before its deadline; a token this server never gave
// (or forgot) is unknown. Times are the caller's clock in milliseconds (the
// loop's uv_now), so tests drive them by hand.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/cluster/transfer.hpp"

namespace nshost::cluster {

struct Reservation {
  uint64_t room_id = 0;     // the room the seat counts against
  RoomSeatRequest request;  // what to do on redemption
  int64_t deadline_ms = 0;
};

class SeatReservations {
 public:
  static constexpr size_t kDefaultMaxReservations = 4096;
  static constexpr uint32_t kDefaultLifetimeMs = 10'000;
  static constexpr size_t kTokenBytes = 16;  // 32 hex characters

  // `random_bytes(n)` returns n random bytes (default: OpenSSL RAND_bytes).
  explicit SeatReservations(size_t max_reservations = kDefaultMaxReservations,
                            std::function<std::string(size_t)> random_bytes = {});

  // A new reservation until now + lifetime; its token, or nullopt with
  // `error` = "too many seat reservations" when max_reservations are open
  // (or "no randomness" if the generator failed).
  std::optional<std::string> reserve(uint64_t room_id, RoomSeatRequest request, int64_t now_ms,
                                     uint32_t lifetime_ms, std::string& error);
  // Takes the reservation of `token` (once). False with `reason`:
  // "seat token used" (redeemed before), "seat token expired" (past its
  // deadline), "seat token unknown" (never given here, malformed, or long gone).
  bool redeem(std::string_view token, int64_t now_ms, Reservation& out, std::string& reason);
  // Removes and returns the reservations past their deadline (the caller
  // frees their seats). Their tokens are then refused as expired.
  std::vector<Reservation> expire(int64_t now_ms);
  // The earliest deadline of an open reservation.
  std::optional<int64_t> next_deadline_ms() const;
  size_t size() const { return open_.size(); }
  // Open reservations that count against `room_id`.
  size_t reserved_in(uint64_t room_id) const;
  // Drops every open reservation of `room_id` (the room closed); they are
  // then refused as unknown.
  void forget_room(uint64_t room_id);

 private:
  enum class Gone : uint8_t { used, expired };
  void remember(const std::string& token, Gone why, int64_t now_ms);

  size_t max_;
  std::function<std::string(size_t)> random_bytes_;
  std::unordered_map<std::string, Reservation> open_;
  std::multimap<int64_t, std::string> deadlines_;  // deadline -> token (may hold stale pairs)
  // Tokens redeemed or expired, so a reuse gets the right reason; bounded
  // (oldest forgotten first), each kept for one lifetime.
  std::unordered_map<std::string, std::pair<Gone, int64_t>> gone_;
  std::multimap<int64_t, std::string> gone_order_;
};

}  // namespace nshost::cluster
