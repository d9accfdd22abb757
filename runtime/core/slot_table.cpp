#include "runtime/core/slot_table.hpp"

namespace nshost {

SlotTable::SlotTable(uint32_t capacity)
    : capacity_(capacity), free_bits_((capacity + 63) / 64, ~uint64_t{0}), generation_(capacity, 0),
      occupied_(capacity, false) {
  if (uint32_t tail = capacity % 64; tail != 0 && !free_bits_.empty()) free_bits_.back() = (uint64_t{1} << tail) - 1;
}

std::optional<ClientId> SlotTable::acquire() {
  for (size_t word = 0; word < free_bits_.size(); ++word) {
    if (free_bits_[word] == 0) continue;
    auto bit = static_cast<uint32_t>(__builtin_ctzll(free_bits_[word]));
    free_bits_[word] &= ~(uint64_t{1} << bit);
    uint32_t slot = static_cast<uint32_t>(word * 64) + bit;
    occupied_[slot] = true;
    ++occupied_count_;
    return ClientId{slot, ++generation_[slot]};
  }
  return std::nullopt;
}

bool SlotTable::release(ClientId id) {
  if (!valid(id)) return false;
  occupied_[id.slot] = false;
  free_bits_[id.slot / 64] |= uint64_t{1} << (id.slot % 64);
  --occupied_count_;
  return true;
}

bool SlotTable::valid(ClientId id) const {
  return id.slot < capacity_ && occupied_[id.slot] && generation_[id.slot] == id.generation;
}

bool SlotTable::occupied(uint32_t slot) const { return slot < capacity_ && occupied_[slot]; }

ClientId SlotTable::id_at(uint32_t slot) const { return ClientId{slot, generation_[slot]}; }

}  // namespace nshost
