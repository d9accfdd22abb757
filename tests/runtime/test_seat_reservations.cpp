// Seat tokens (docs/cluster.md "Seat tokens"): one use, before the deadline,
// only tokens this server gave; a bounded number open at once.
#include <doctest/doctest.h>

#include <set>

#include "runtime/cluster/seat_reservations.hpp"

using nshost::cluster::Reservation;
using nshost::cluster::RoomSeatRequest;
using nshost::cluster::SeatReservations;

namespace {

RoomSeatRequest join(uint64_t room, uint32_t rpc) {
  RoomSeatRequest r;
  r.kind = RoomSeatRequest::Kind::join_room;
  r.room_id = room;
  r.rpc_id = rpc;
  return r;
}

}  // namespace

TEST_CASE("seat reservations: a token redeems once, with what was reserved") {
  SeatReservations seats;
  std::string error, reason;
  auto token = seats.reserve(7, join(7, 42), 1000, 10'000, error);
  REQUIRE(token);
  CHECK(token->size() == 32);
  CHECK(token->find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(seats.size() == 1);
  CHECK(seats.reserved_in(7) == 1);
  CHECK(seats.reserved_in(8) == 0);
  Reservation r;
  REQUIRE(seats.redeem(*token, 5000, r, reason));
  CHECK(r.room_id == 7);
  CHECK(r.request.rpc_id == 42);
  CHECK(seats.size() == 0);
  CHECK(seats.reserved_in(7) == 0);
  CHECK_FALSE(seats.redeem(*token, 5001, r, reason));
  CHECK(reason == "seat token used");
}

TEST_CASE("seat reservations: past its deadline a token is expired and its seat is handed back once") {
  SeatReservations seats;
  std::string error, reason;
  auto token = seats.reserve(3, join(3, 1), 0, 10'000, error);
  REQUIRE(token);
  CHECK(seats.expire(9'999).empty());
  CHECK(seats.next_deadline_ms() == 10'000);
  auto gone = seats.expire(10'000);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].room_id == 3);
  CHECK(seats.expire(20'000).empty());
  Reservation r;
  CHECK_FALSE(seats.redeem(*token, 10'001, r, reason));
  CHECK(reason == "seat token expired");
  // Redeeming after the deadline without an expire() in between: expired too.
  auto late = seats.reserve(3, join(3, 2), 0, 100, error);
  REQUIRE(late);
  CHECK_FALSE(seats.redeem(*late, 100, r, reason));
  CHECK(reason == "seat token expired");
}

TEST_CASE("seat reservations: a forged or malformed token is unknown") {
  SeatReservations seats;
  std::string error, reason;
  auto token = seats.reserve(1, join(1, 1), 0, 10'000, error);
  REQUIRE(token);
  Reservation r;
  std::string forged = *token;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  for (std::string bad : {forged, std::string(), std::string("zz"), std::string(4096, 'f'), token->substr(0, 31)}) {
    CAPTURE(bad.size());
    CHECK_FALSE(seats.redeem(bad, 1, r, reason));
    CHECK(reason == "seat token unknown");
  }
  CHECK(seats.size() == 1);  // the real one is untouched
  REQUIRE(seats.redeem(*token, 1, r, reason));
}

TEST_CASE("seat reservations: bounded, tokens unique, a closed room's reservations are forgotten") {
  SeatReservations seats(100);
  std::string error, reason;
  std::set<std::string> tokens;
  for (int i = 0; i < 100; ++i) {
    auto t = seats.reserve(static_cast<uint64_t>(i % 5), join(1, 1), 0, 10'000, error);
    REQUIRE(t);
    tokens.insert(*t);
  }
  CHECK(tokens.size() == 100);
  CHECK_FALSE(seats.reserve(1, join(1, 1), 0, 10'000, error));
  CHECK(error == "too many seat reservations");
  CHECK(seats.reserved_in(2) == 20);
  seats.forget_room(2);
  CHECK(seats.size() == 80);
  CHECK(seats.reserve(1, join(1, 1), 0, 10'000, error));
  // Expiry frees room too.
  CHECK(seats.expire(10'000).size() == 81);
  CHECK(seats.size() == 0);
  CHECK(seats.reserve(1, join(1, 1), 10'000, 10'000, error));
  // A generator that fails gives no token.
  SeatReservations broken(10, [](size_t) { return std::string(); });
  CHECK_FALSE(broken.reserve(1, join(1, 1), 0, 1000, error));
  CHECK(error == "no randomness");
}
