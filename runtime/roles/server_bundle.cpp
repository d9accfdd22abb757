// The server streams its script tree to clients that ask (docs/shards.md).
// The bundle is encoded once at start; each transfer's packets point into
// that copy (ENET_PACKET_FLAG_NO_ALLOCATE), at most kBundlePartsInFlight per
// client at a time, topped up on each tick and after each service pass. A
// client may begin kMaxBundleTransfers transfers per connection; a repeat
// while one is under way is ignored, one beyond is kicked.
#include <algorithm>

#include "runtime/script/bundle.hpp"
#include "runtime/core/log.hpp"
#include "runtime/roles/server_role.hpp"

namespace nshost {

namespace {

// Names the transfer a bundle part belongs to, for its release callback.
struct PartTicket {
  ServerRole* role;
  size_t peer_index;
  uint64_t transfer_id;
};

}  // namespace

void ServerRole::prepare_bundle() {
  Bundle bundle;
  std::string error;
  if (!bundle_directory(options_.script, options_.max_bundle_bytes, bundle, error)) {
    log_write(LogLevel::warn, "server", "not serving the script tree (clients cannot fetch it): " + error);
    return;
  }
  std::string bytes = encode_bundle(bundle);
  bundle_hash_ = sha256(bytes);
  bundle_size_ = bytes.size();
  // Every part encoded once, back to back: each transfer's packets point
  // into this one copy. A part (with its 5-byte header) stays within
  // --max-message-size, which ENet enforces on every packet.
  const size_t part_bytes = std::min<size_t>(wire::kBundlePartBytes, options_.max_message_bytes - 5);
  bundle_wire_.clear();
  bundle_parts_.clear();
  for (size_t offset = 0; offset < bytes.size(); offset += part_bytes) {
    std::string part = wire::encode_bundle_part(static_cast<uint32_t>(offset),
                                                std::string_view(bytes).substr(offset, part_bytes));
    bundle_parts_.push_back({bundle_wire_.size(), part.size()});
    bundle_wire_ += part;
  }
  log_write(LogLevel::info, "server",
            "serving script bundle " + to_hex(bundle_hash_) + " (" + std::to_string(bundle.files.size()) +
                " files, " + std::to_string(bundle_size_) + " bytes)");
}

void ServerRole::serve_bundle(ENetPeer* peer) {
  if (bundle_parts_.empty()) {
    log_write(LogLevel::debug, "server", "bundle requested but none is served");
    return;
  }
  PeerState& st = state_of(peer);
  if (PeerLink(*endpoint_, peer).local()) {  // it runs the host's own script
    log_write(LogLevel::debug, "server", "ignored a bundle request from the local client");
    return;
  }
  if (st.bundle_next_part != kNoTransfer) {
    // One transfer per client at a time: a repeat while one is under way is
    // ignored (and counted).
    if (st.bundle_requests_ignored++ == 0)
      log_write(LogLevel::info, "server",
                "ignoring repeated bundle requests from " + PeerLink::describe(peer) + " during its transfer");
    return;
  }
  if (st.bundle_transfers >= kMaxBundleTransfers) {
    log_write(LogLevel::warn, "server",
              "kicking " + PeerLink::describe(peer) + ": bundle_requests (" +
                  std::to_string(st.bundle_transfers) + " transfers already, " +
                  std::to_string(st.bundle_requests_ignored) + " repeats ignored)");
    kick(st.id, "bundle_requests");
    return;
  }
  ++st.bundle_transfers;
  st.bundle_next_part = 0;
  st.bundle_parts_out = 0;
  st.bundle_transfer_id = ++bundle_transfer_count_;
  size_t index = peer_index(peer);
  if (std::find(bundle_senders_.begin(), bundle_senders_.end(), index) == bundle_senders_.end())
    bundle_senders_.push_back(index);
  pump_bundle(index);
}

void ServerRole::on_part_released(ENetPacket* packet) {
  auto* ticket = static_cast<PartTicket*>(packet->userData);
  if (!ticket) return;
  PeerState& st = ticket->role->peers_[ticket->peer_index];
  if (st.bundle_transfer_id == ticket->transfer_id && st.bundle_parts_out > 0) --st.bundle_parts_out;
  delete ticket;
}

bool ServerRole::pump_bundle(size_t index) {
  PeerState& st = peers_[index];
  ENetPeer* peer = &endpoint_->host()->peers[index];
  if (st.bundle_next_part == kNoTransfer) return false;
  if (st.phase != Phase::live) {
    st.bundle_next_part = kNoTransfer;
    return false;
  }
  bool sent = false;
  while (st.bundle_next_part < bundle_parts_.size() && st.bundle_parts_out < kBundlePartsInFlight) {
    auto [offset, length] = bundle_parts_[st.bundle_next_part];
    ENetPacket* packet = enet_packet_create(bundle_wire_.data() + offset, length,
                                            ENET_PACKET_FLAG_RELIABLE | ENET_PACKET_FLAG_NO_ALLOCATE);
    if (!packet) break;
    // Owned by the packet from here: its release callback frees it, and ENet
    // destroys every packet (acknowledged, or with its peer or host).
    packet->userData = new PartTicket{this, index, st.bundle_transfer_id};
    packet->freeCallback = &ServerRole::on_part_released;
    ++st.bundle_parts_out;
    if (enet_peer_send(peer, wire::kChannelControl, packet) != 0) {
      enet_packet_destroy(packet);
      st.bundle_next_part = kNoTransfer;
      return false;
    }
    endpoint_->count_out(peer, wire::kChannelControl, length);
    ++st.bundle_next_part;
    sent = true;
  }
  if (sent) endpoint_->mark_dirty();
  if (sent && st.bundle_next_part == bundle_parts_.size())
    log_write(LogLevel::info, "server",
              "sent script bundle (" + std::to_string(bundle_size_) + " bytes) to " + PeerLink::describe(peer));
  // Under way until ENet has released every part (acknowledged or dropped).
  // Topped up on each tick and after each service pass.
  if (st.bundle_next_part == bundle_parts_.size() && st.bundle_parts_out == 0) {
    st.bundle_next_part = kNoTransfer;
    return false;
  }
  return true;
}

void ServerRole::pump_bundles() {
  if (!endpoint_) return;
  std::erase_if(bundle_senders_, [this](size_t index) { return !pump_bundle(index); });
}

}  // namespace nshost
