// The server role's metrics (docs/operations.md): the --admin HTTP server and
// the snapshot its endpoints render. Gathering walks the peers, the slots and
// the rooms once (O(peers + rooms)), on the loop between two ticks; the
// counters themselves are bumped where things happen (ServerMetrics).
#include <chrono>

#include "runtime/core/log.hpp"
#include "runtime/roles/peer_link.hpp"
#include "runtime/roles/server_role.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost {

bool ServerRole::start_admin(std::string& error) {
  if (options_.admin_host.empty()) return true;
  ops::AdminServer::Config config;
  config.host = options_.admin_host;
  config.port = options_.admin_port;
  config.token = options_.admin_token;
  admin_ = ops::AdminServer::start(loop_, std::move(config), *this, error);
  if (!admin_) {
    error = "nshost: " + error;
    return false;
  }
  return true;
}

ops::StatusSnapshot ServerRole::snapshot() {
  ops::StatusSnapshot s;
  int64_t now_ns = monotonic_ns();
  s.version = NSHOST_VERSION;
  s.time_unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  s.uptime_s = static_cast<double>(now_ns - started_ns_) / 1e9;
  s.tick_rate_hz = tick_.rate_hz();
  s.budget_s = 1.0 / tick_.rate_hz();
  s.ticks = &metrics_.ticks;
  s.tick_window = metrics_.ticks.window(now_ns, 1'000'000'000);
  s.counters = &metrics_;
  s.max_clients = options_.max_clients;
  if (endpoint_) {
    const ENetHost* host = endpoint_->host();
    for (size_t i = 0; i < host->peerCount; ++i) {
      if (peers_[i].phase == Phase::live) ++s.clients_connected;
      else if (peers_[i].phase == Phase::handshake) ++s.clients_handshaking;
    }
    const auto& t = endpoint_->traffic();
    s.channels.resize(wire::kChannelCount);
    for (size_t ch = 0; ch < s.channels.size(); ++ch)
      s.channels[ch] = {t.messages_in[ch], t.bytes_in[ch], t.messages_out[ch], t.bytes_out[ch]};
    s.malformed_datagrams = endpoint_->tap().stats().malformed_in;
  }
  if (local_ && peers_.back().phase == Phase::live) ++s.clients_connected;
  for (uint32_t slot = 0; slot < options_.max_clients; ++slot) {
    const SlotEntry& entry = slot_entries_[slot];
    ENetPeer* peer = entry.peer;
    if (!peer || peers_[peer_index(peer)].phase != Phase::live) continue;
    ops::ClientRow row;
    row.slot = slot;
    row.id = entry.session_id;
    row.address = PeerLink::describe(peer);
    if (!PeerLink(endpoint_.get(), peer).local()) {
      row.rtt_ms = peer->roundTripTime;
      row.packet_loss = static_cast<double>(peer->packetLoss) / static_cast<double>(ENET_PEER_PACKET_LOSS_SCALE);
      const auto& pt = endpoint_->peer_traffic(peer_index(peer));
      row.bytes_in = pt.bytes_in;
      row.bytes_out = pt.bytes_out;
    }
    if (rooms_)
      if (const rooms::Member* m = rooms_->member(entry.session_id)) row.rooms = m->rooms;
    s.clients.push_back(std::move(row));
  }
  s.lua_memory_bytes.emplace_back("main", script_ ? script_->memory_used() : 0);
  if (rooms_) {
    for (const auto& [id, room] : rooms_->rooms()) {
      if (room->phase() == rooms::Room::Phase::disposed) continue;
      ++s.rooms_by_type[room->type().name];
      ++s.rooms_total;
      s.rooms.push_back({id, room->type().name, room->client_count(), room->type().max_clients, room->locked()});
      if (const ScriptHost* script = room->script())
        s.lua_memory_bytes.emplace_back("room:" + std::to_string(id), script->memory_used());
    }
  }
  ops::read_process_usage(s.cpu_seconds, s.resident_memory_bytes);
  if (admin_) s.admin = admin_->counters();
  return s;
}

std::string ServerRole::metrics_text() { return ops::render_prometheus(snapshot()); }

std::string ServerRole::status_json() { return ops::render_status_json(snapshot()); }

}  // namespace nshost
