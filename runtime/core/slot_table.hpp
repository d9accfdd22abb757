#pragma once
// Slot assignment (seed 000, "Slots"): each client gets the lowest free index
// in [0, capacity) at connect; a freed slot goes to the next joiner. Each
// occupancy has a generation so a handle from an earlier occupant of the same
// slot is recognisably stale.
#include <cstdint>
#include <optional>
#include <vector>

namespace nshost {

// Identifies one connection for its whole life. Compare both fields.
struct ClientId {
  uint32_t slot = 0;
  uint32_t generation = 0;  // starts at 1; 0 never names a live connection
  friend bool operator==(const ClientId&, const ClientId&) = default;
};

class SlotTable {
 public:
  explicit SlotTable(uint32_t capacity);

  // Takes the lowest free slot, or nullopt when all `capacity` are taken.
  std::optional<ClientId> acquire();
  // Frees the slot of `id`; false (and no change) if `id` is stale.
  bool release(ClientId id);
  bool valid(ClientId id) const;
  bool occupied(uint32_t slot) const;
  // The live id at `slot`; only meaningful when occupied(slot).
  ClientId id_at(uint32_t slot) const;

  uint32_t capacity() const { return capacity_; }
  uint32_t occupied_count() const { return occupied_count_; }

 private:
  uint32_t capacity_;
  uint32_t occupied_count_ = 0;
  std::vector<uint64_t> free_bits_;  // bit set = slot free
  std::vector<uint32_t> generation_;
  std::vector<bool> occupied_;
};

}  // namespace nshost
