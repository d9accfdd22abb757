#include <doctest/doctest.h>

#include "runtime/core/slot_table.hpp"

using nshost::ClientId;
using nshost::SlotTable;

TEST_CASE("slot table: joiners get the lowest free slot, freed slots are reused") {
  SlotTable table(4);
  auto a = table.acquire(), b = table.acquire(), c = table.acquire();
  REQUIRE((a && b && c));
  CHECK(a->slot == 0);
  CHECK(b->slot == 1);
  CHECK(c->slot == 2);
  CHECK(table.release(*b));
  auto d = table.acquire();
  REQUIRE(d);
  CHECK(d->slot == 1);
  CHECK(table.occupied_count() == 3);
}

TEST_CASE("slot table: a full table refuses, and accepts again after a release") {
  SlotTable table(2);
  auto a = table.acquire();
  auto b = table.acquire();
  CHECK_FALSE(table.acquire());
  table.release(*a);
  auto c = table.acquire();
  REQUIRE(c);
  CHECK(c->slot == 0);
  CHECK(b->slot == 1);
}

TEST_CASE("slot table: an id from an earlier occupant of a reused slot is stale") {
  SlotTable table(1);
  auto first = table.acquire();
  REQUIRE(first);
  CHECK(table.valid(*first));
  table.release(*first);
  CHECK_FALSE(table.valid(*first));
  auto second = table.acquire();
  REQUIRE(second);
  CHECK(second->slot == first->slot);
  CHECK(second->generation != first->generation);
  CHECK_FALSE(table.valid(*first));
  CHECK(table.valid(*second));
  CHECK_FALSE(table.release(*first));
  CHECK(table.occupied(0));
}

TEST_CASE("slot table: ids out of range or never issued are not valid") {
  SlotTable table(3);
  CHECK_FALSE(table.valid(ClientId{7, 1}));
  CHECK_FALSE(table.valid(ClientId{0, 0}));
  CHECK_FALSE(table.release(ClientId{0, 1}));
}

TEST_CASE("slot table: capacity 4095 fills in order across bitmap words") {
  SlotTable table(4095);
  for (uint32_t i = 0; i < 4095; ++i) {
    auto id = table.acquire();
    REQUIRE(id);
    REQUIRE(id->slot == i);
  }
  CHECK_FALSE(table.acquire());
  table.release(table.id_at(130));
  table.release(table.id_at(64));
  CHECK(table.acquire()->slot == 64);
  CHECK(table.acquire()->slot == 130);
}
