// The server's side of a resume (docs/reliability.md): the welcome that
// issues a session token, reliable sends that are retained (live) or queued
// (the slot is held in its grace window), acks both ways, taking a session
// back onto a new link with a replay of what the client lacks, and ending a
// held session when its grace window closes or a fresh joiner needs its slot.
#include <memory>

#include "runtime/core/log.hpp"
#include "runtime/roles/peer_link.hpp"
#include "runtime/roles/server_role.hpp"

namespace nshost {

void ServerRole::send_welcome(ENetPeer* peer, ClientId id, bool resumed) {
  wire::Welcome welcome;
  welcome.slot = static_cast<uint16_t>(id.slot);
  welcome.max_clients = static_cast<uint16_t>(options_.max_clients);
  welcome.tick_rate_hz = static_cast<uint16_t>(tick_.rate_hz());
  welcome.script_hash = bundle_hash_;
  welcome.bundle_bytes = static_cast<uint32_t>(bundle_size_);
  if (options_.resume_grace_ms > 0)
    welcome.session_token = resumed ? sessions_.reissue(id.slot) : sessions_.issue(id.slot);
  welcome.resumed = resumed;
  if (resumed) welcome.received = slot_entries_[id.slot].replay.received();
  if (const auto& codec = slot_entries_[id.slot].codec) welcome.codec = rooms::codec_name(*codec);
  welcome.session_id = slot_entries_[id.slot].session_id;
  welcome.server_tick = last_tick_num_;
  link(peer).send_control(wire::encode_welcome(welcome));
}

bool ServerRole::resume(ENetPeer* peer, uint32_t slot, const wire::Hello& hello) {
  SlotEntry& entry = slot_entries_[slot];
  ReliableReplay& replay = entry.replay;
  // Both sides must still hold every reliable message the other lacks.
  if (!replay.acknowledge(hello.received) || !replay.can_replay_from(hello.received) ||
      hello.replay_floor > replay.received()) {
    log_event(LogLevel::warn, "server", "resume_failed",
              "client " + PeerLink::describe(peer) + " cannot resume slot " + std::to_string(slot) +
                  ": reliable messages cannot be replayed (it has " + std::to_string(hello.received) + " of " +
                  std::to_string(replay.numbered()) + ", we hold from " + std::to_string(replay.replay_floor()) +
                  "; we have " + std::to_string(replay.received()) + ", it holds from " +
                  std::to_string(hello.replay_floor) + "; --resume-buffer-size)",
              {{"slot", slot}, {"address", PeerLink::describe(peer)}, {"reason", "replay"}});
    drop_lost(slot, "timeout");
    return false;
  }
  ClientId id = slots_.id_at(slot);
  PeerState& st = state_of(peer);
  int64_t now = monotonic_ns();
  st.phase = Phase::live;
  st.id = id;
  st.since_ns = now;
  // The client replays what it sent while down: the bucket holds what a
  // client at the rate could have sent meanwhile, on top of its depth.
  if (uint32_t rate = options_.limits.max_message_rate; rate > 0) {
    st.rate_tokens = static_cast<double>(rate_depth()) + (now - entry.lost_since_ns) * 1e-9 * rate;
    st.rate_refill_ns = now;
  }
  entry.peer = peer;
  entry.held = false;
  send_welcome(peer, id, true);  // re-issues the token: the presented one is spent
  size_t replayed = link(peer).replay(replay, hello.received);
  ++metrics_.resumes;
  log_event(LogLevel::info, "server", "resume",
            "client " + PeerLink::describe(peer) + " resumed slot " + std::to_string(slot) + " (replayed " +
                std::to_string(replayed) + " reliable message(s))",
            {{"slot", slot}, {"address", PeerLink::describe(peer)}});
  script_->invoke("resumed", [&](lua_State*) {
    push_handle(id);
    return 1;
  });
  return true;
}

void ServerRole::enter_grace(ENetPeer* peer) {
  PeerState& st = state_of(peer);
  ClientId id = st.id;
  st = PeerState{};
  SlotEntry& entry = slot_entries_[id.slot];
  entry.peer = nullptr;
  entry.held = true;
  int64_t now = monotonic_ns();
  entry.lost_since_ns = now;
  sessions_.mark_lost(id.slot, now + static_cast<int64_t>(options_.resume_grace_ms) * 1'000'000, peer->address.host,
                      now);
  log_event(LogLevel::info, "server", "lost",
            "client in slot " + std::to_string(id.slot) + " lost its link; holding the slot for " +
                std::to_string(options_.resume_grace_ms) + " ms",
            {{"slot", id.slot}, {"address", PeerLink::describe(peer)}});
  script_->invoke("lost", [&](lua_State*) {
    push_handle(id);
    return 1;
  });
}

void ServerRole::expire_lost_sessions(int64_t now_ns) {
  for (auto& [slot, reason] : sessions_.expired(now_ns)) drop_lost(slot, reason);
}

void ServerRole::drop_lost(uint32_t slot, const std::string& reason) {
  ClientId id = slots_.id_at(slot);
  slot_entries_[slot].held = false;
  size_t undelivered = slot_entries_[slot].replay.held_count();
  log_event(LogLevel::info, "server", "disconnect",
            "client in slot " + std::to_string(slot) + " left: " + reason + undelivered_note(undelivered),
            {{"slot", slot}, {"reason", reason}});
  sessions_.revoke(slot);  // the token resumes nothing from here on
  // Still marked lost while the handler runs, so liveness() says departing:
  // slot() answers and nothing is sent.
  sessions_.mark_lost(slot, 0);
  leave_rooms(slot, reason);
  script_->invoke("disconnect", [&](lua_State* L) {
    push_handle(id);
    lua_pushstring(L, reason.c_str());
    lua_pushinteger(L, static_cast<lua_Integer>(undelivered));
    return 3;
  });
  sessions_.revoke(slot);
  SlotEntry& entry = slot_entries_[slot];
  luaL_unref(script_->state(), LUA_REGISTRYINDEX, entry.handle_ref);
  entry = SlotEntry{};
  slots_.release(id);
}

bool ServerRole::send_reliable(uint32_t slot, const ReliableReplay::Payload& payload, ENetPacket* packet,
                               std::string& error) {
  SlotEntry& entry = slot_entries_[slot];
  if (entry.held) {
    if (entry.replay.queue(payload)) return true;
    error = "ENOBUFS: the resume buffer of slot " + std::to_string(slot) + " is full (" +
            std::to_string(entry.replay.held_bytes()) + " of " + std::to_string(entry.replay.budget_bytes()) +
            " bytes; --resume-buffer-size)";
    return false;
  }
  if (!entry.peer || state_of(entry.peer).phase != Phase::live) return false;
  if (!link(entry.peer).queue(packet, Channel::reliable)) return false;
  if (options_.resume_grace_ms > 0) entry.replay.retain_sent(payload);  // no resume, no replay
  return true;
}

void ServerRole::on_ack(ENetPeer* peer, std::string_view bytes) {
  uint64_t count = 0;
  std::string error;
  const PeerState& st = state_of(peer);
  if (!wire::decode_ack(bytes, count, error)) {
    log_write(LogLevel::warn, "server", "malformed ack from " + PeerLink::describe(peer) + ": " + error);
    return;
  }
  ReliableReplay& replay = slot_entries_[st.id.slot].replay;
  if (!replay.acknowledge(count))
    log_write(LogLevel::warn, "server",
              "ignored ack from " + PeerLink::describe(peer) + ": " + std::to_string(count) +
                  " received, but only " + std::to_string(replay.numbered()) + " sent");
}

void ServerRole::send_acks() {
  if (!endpoint_) return;
  int64_t now = monotonic_ns();
  for (SlotEntry& entry : slot_entries_) {
    if (!entry.peer || state_of(entry.peer).phase != Phase::live || !entry.replay.take_ack_due(now)) continue;
    link(entry.peer).send_control(wire::encode_ack(entry.replay.received()));
  }
}

void ServerRole::send_clocks(int64_t now_ns) {
  constexpr int64_t kClockIntervalNs = 1'000'000'000;
  if (!endpoint_ || now_ns - last_clock_ns_ < kClockIntervalNs) return;
  last_clock_ns_ = now_ns;
  const std::string clock = wire::encode_clock(last_tick_num_);
  for (SlotEntry& entry : slot_entries_) {
    if (entry.peer && state_of(entry.peer).phase == Phase::live) link(entry.peer).send_control(clock);
  }
}

}  // namespace nshost
