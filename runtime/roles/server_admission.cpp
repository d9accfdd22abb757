// The server's admission path: which connects the socket tap lets through
// (per-address and global pending budgets, fair eviction), which ENet peers
// may owe a hello, the hello itself (version, handoff size, session token,
// a slot or a refusal), the message-rate bucket and the expiry of half-open
// peers. Every refusal is one log line and a reject notice; nothing here
// stops the server serving everyone else.
#include <algorithm>
#include <optional>
#include <unordered_map>

#include "runtime/core/log.hpp"
#include "runtime/roles/peer_link.hpp"
#include "runtime/roles/server_role.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost {

void ServerRole::refuse(ENetPeer* peer, std::string_view reason) {
  wire::Notice notice{wire::ControlType::reject, std::string(reason)};
  link(peer).send_control(wire::encode_notice(notice));
  link(peer).disconnect_later(static_cast<uint32_t>(wire::DisconnectCode::rejected));
  PeerState& st = state_of(peer);
  st.phase = Phase::rejected;
  st.since_ns = monotonic_ns();
  endpoint_->mark_dirty();  // the disconnect too
}

void ServerRole::on_hello(ENetPeer* peer, std::string_view bytes) {
  wire::Hello hello;
  std::string error;
  const std::string who = PeerLink::describe(peer);
  if (!wire::decode_hello(bytes, hello, error)) {
    std::string reason = error == "handoff_too_large" ? error : "malformed_hello";
    log_write(LogLevel::warn, "server", "rejected " + who + ": " + reason + " (" + error + ")");
    refuse(peer, reason);
    return;
  }
  if (hello.protocol_version != wire::kProtocolVersion) {
    log_write(LogLevel::warn, "server",
              "rejected " + who + ": protocol_version (client speaks " + std::to_string(hello.protocol_version) +
                  ", server " + std::to_string(wire::kProtocolVersion) + ")");
    refuse(peer, "protocol_version");
    return;
  }
  if (hello.handoff.size() > options_.limits.max_handoff_bytes) {
    log_write(LogLevel::warn, "server",
              "rejected " + who + ": handoff_too_large (" + std::to_string(hello.handoff.size()) + " bytes, limit " +
                  std::to_string(options_.limits.max_handoff_bytes) + ")");
    refuse(peer, "handoff_too_large");
    return;
  }
  Admission admission;
  if (!check_room_fields(peer, hello, who, admission)) return;
  if (!hello.session_token.empty() && take_session(peer, hello, who)) return;
  if (!authenticate(peer, hello, who, admission)) return;
  if (!hello.seat_token.empty() && !take_seat_token(peer, hello, who, admission)) return;
  auto id = acquire_slot(peer, who);
  auto reservation = admission.reservation;
  if (id) seat(peer, *id, hello.handoff, who, std::move(admission));
  if (reservation) redeem_seat(id, Admission{{}, {}, reservation});
}

bool ServerRole::take_session(ENetPeer* peer, const wire::Hello& hello, const std::string& who) {
  auto slot = sessions_.find(hello.session_token);
  if (!slot) {
    log_write(LogLevel::info, "server", "unknown session token from " + who + ": not a resume, joining fresh");
    return false;
  }
  ENetPeer* old = slot_entries_[*slot].peer;
  if (sessions_.lost(*slot)) return resume(peer, *slot, hello);
  if (old && state_of(old).phase == Phase::live && old->address.host == peer->address.host &&
      old->address.port == peer->address.port) {
    // The same client socket dialled again: its old link is dead on its side.
    log_write(LogLevel::info, "server", "client " + who + " re-dialled; replaced its stale link");
    link(old).reset();
    enter_grace(old);
    return resume(peer, *slot, hello);
  }
  // The session still has its link: a token never takes a slot over.
  log_write(LogLevel::warn, "server",
            "rejected " + who + ": session_in_use (slot " + std::to_string(*slot) + " is still connected)");
  refuse(peer, "session_in_use");
  return true;
}

std::optional<ClientId> ServerRole::acquire_slot(ENetPeer* peer, const std::string& who) {
  auto id = slots_.acquire();
  if (!id) {
    // Slots held for a resume do not keep a fresh joiner out: the oldest of
    // the address holding the most is ended and its slot goes to the joiner.
    if (auto held = sessions_.eviction_candidate()) {
      log_write(LogLevel::info, "server",
                "ending the session held for resume in slot " + std::to_string(*held) + " to seat " + who);
      drop_lost(*held, "timeout");
      // The disconnect handler may have closed this peer (a kick, a shutdown).
      if (state_of(peer).phase == Phase::handshake && peer->state == ENET_PEER_STATE_CONNECTED && !stopping_)
        id = slots_.acquire();
      else
        return std::nullopt;
    }
  }
  if (!id) {
    log_write(LogLevel::info, "server", "rejected " + who + ": full (" + std::to_string(options_.max_clients) + " slots)");
    refuse(peer, "full");
  }
  return id;
}

void ServerRole::seat(ENetPeer* peer, ClientId id, const std::string& handoff, const std::string& who,
                      Admission admission) {
  PeerState& st = state_of(peer);
  st.phase = Phase::live;
  st.id = id;
  st.since_ns = monotonic_ns();
  SlotEntry& entry = slot_entries_[id.slot];
  entry.peer = peer;
  entry.replay = ReliableReplay(options_.resume_buffer_bytes);
  entry.session_id = next_session_id_++;
  entry.codec = admission.codec;
  script_->protect("creating a client handle", [&](lua_State* L) {
    push_client_handle(L, id, entry.session_id);
    if (!admission.claims.empty()) {  // c.auth
      rooms::Value claims;
      std::string error;
      if (rooms::decode(rooms::Codec::msgpack, admission.claims, claims, error)) {
        rooms::push_value(L, claims);
        lua_setiuservalue(L, -2, 1);
      }
    }
    entry.handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
  });
  if (rooms_) rooms_->add_member(entry.session_id, id, admission.codec, std::move(admission.claims));
  send_welcome(peer, id, false);
  log_write(LogLevel::info, "server",
            "client " + who + " joined in slot " + std::to_string(id.slot) + " (session " +
                std::to_string(entry.session_id) + (entry.codec ? std::string(", ") + rooms::codec_name(*entry.codec) : "") +
                ")");
  script_->invoke("connect", [&](lua_State* S) {
    push_handle(id);
    lua_pushlstring(S, handoff.data(), handoff.size());
    return 2;
  });
}

uint64_t ServerRole::rate_depth() const {
  // A reliable message can be held back (behind a lost one, ENet delivering
  // in order) for up to the link timeout and then arrive with everything
  // sent after it: the bucket holds that many seconds at the rate.
  uint64_t seconds_ms = std::max<uint64_t>(1000, options_.limits.link_timeout_ms);
  return static_cast<uint64_t>(options_.limits.max_message_rate) * seconds_ms / 1000;
}

bool ServerRole::within_message_rate(ENetPeer* peer) {
  uint32_t rate = options_.limits.max_message_rate;
  if (rate == 0) return true;
  PeerState& st = state_of(peer);
  if (st.phase != Phase::live && st.phase != Phase::handshake) return true;  // already going; ignored later
  int64_t now = monotonic_ns();
  const double depth = static_cast<double>(rate_depth());
  if (st.rate_refill_ns == 0) {
    st.rate_tokens = depth;
    st.rate_refill_ns = now;
  }
  // Above the depth (credit after a resume) it only drains.
  st.rate_tokens = std::max(st.rate_tokens, std::min(depth, st.rate_tokens + (now - st.rate_refill_ns) * 1e-9 * rate));
  st.rate_refill_ns = now;
  if (st.rate_tokens >= 1.0) {
    st.rate_tokens -= 1.0;
    return true;
  }
  if (st.phase == Phase::live) {
    kick(st.id, "rate_limit");
  } else {
    log_write(LogLevel::warn, "server", "rejected " + PeerLink::describe(peer) + ": rate_limit");
    refuse(peer, "rate_limit");
  }
  return false;
}

bool ServerRole::admit_handshake(ENetPeer* peer) {
  enet_peer_timeout(peer, 0, options_.limits.link_timeout_ms, options_.limits.link_timeout_ms);
  size_t pending = 0;
  for (const PeerState& p : peers_) pending += p.phase == Phase::handshake;
  if (pending < options_.limits.max_pending_handshakes) return true;
  log_write(LogLevel::warn, "server",
            "dropped " + PeerLink::describe(peer) + ": too many pending handshakes (" +
                std::to_string(pending) + ")");
  link(peer).disconnect_now(static_cast<uint32_t>(wire::DisconnectCode::rejected));
  state_of(peer) = PeerState{};
  return false;
}

bool ServerRole::admit_connect(const ENetAddress& from) {
  // Pending: ENet peers in use that hold no slot (half-open, owing their
  // hello, being refused). Counted per address for the fair eviction below.
  ENetHost* host = endpoint_->host();
  struct Holder {
    uint32_t pending = 0;
    size_t oldest = 0;  // peer index
    int64_t oldest_since_ns = 0;
  };
  std::unordered_map<uint32_t, Holder> by_host;
  size_t pending = 0, in_use = 0;
  int64_t now = monotonic_ns();
  for (size_t i = 0; i < host->peerCount; ++i) {
    const ENetPeer& p = host->peers[i];
    if (p.state == ENET_PEER_STATE_DISCONNECTED) continue;
    ++in_use;
    if (peers_[i].phase == Phase::live || peers_[i].phase == Phase::departing) continue;
    ++pending;
    Holder& h = by_host[p.address.host];
    int64_t since = peers_[i].since_ns ? peers_[i].since_ns : now;  // not yet stamped: the newest
    if (h.pending++ == 0 || since < h.oldest_since_ns) {
      h.oldest = i;
      h.oldest_since_ns = since;
    }
  }
  uint32_t mine = by_host.count(from.host) ? by_host[from.host].pending : 0;
  if (mine >= options_.limits.max_pending_per_address) {
    note_refused(from);
    return false;
  }
  if (pending < options_.limits.max_pending_handshakes && in_use < host->peerCount) return true;
  // Full: an address holding fewer pending peers than the address holding the
  // most takes the oldest of that address's; a flood costs its own addresses.
  const Holder* top = nullptr;
  for (const auto& [address, h] : by_host)
    if (!top || h.pending > top->pending || (h.pending == top->pending && h.oldest_since_ns < top->oldest_since_ns))
      top = &h;
  if (!top || top->pending <= mine) {
    note_refused(from);
    return false;
  }
  ENetPeer* victim = &host->peers[top->oldest];
  log_write(LogLevel::debug, "server",
            "evicted pending " + format_address(victim->address) + " for a connect from " + format_address(from));
  ++evicted_pending_;
  if (victim->state == ENET_PEER_STATE_CONNECTED)
    link(victim).disconnect_now(static_cast<uint32_t>(wire::DisconnectCode::rejected));
  else
    link(victim).reset();
  peers_[top->oldest] = PeerState{};
  return true;
}

void ServerRole::note_refused(const ENetAddress& from) {
  ++refused_connects_;
  if (refused_addresses_.size() < kMaxRefusedAddresses) refused_addresses_.insert(from.host);
}

void ServerRole::report_refused(int64_t now_ns) {
  if (refused_connects_ == 0 && evicted_pending_ == 0) return;
  if (refused_report_ns_ != 0 && now_ns - refused_report_ns_ < kRefusedReportIntervalNs) return;
  log_write(LogLevel::info, "server",
            "refused " + std::to_string(refused_connects_) + " connect(s) from " +
                std::to_string(refused_addresses_.size()) +
                (refused_addresses_.size() == kMaxRefusedAddresses ? "+" : "") + " address(es) and evicted " +
                std::to_string(evicted_pending_) +
                " pending peer(s) since the last report (--max-pending-handshakes=" +
                std::to_string(options_.limits.max_pending_handshakes) +
                ", --max-pending-per-address=" + std::to_string(options_.limits.max_pending_per_address) + ")");
  refused_connects_ = 0;
  evicted_pending_ = 0;
  refused_addresses_.clear();
  refused_report_ns_ = now_ns;
}

void ServerRole::expire_half_open(size_t index, int64_t now_ns) {
  // ENet keeps a peer whose connect never completes until its own timeouts;
  // the handshake timeout bounds that too.
  ENetPeer* peer = &endpoint_->host()->peers[index];
  PeerState& st = peers_[index];
  if (!PeerLink::half_open(*peer)) {
    st.half_open_connect_id = 0;
    return;
  }
  if (st.half_open_connect_id != peer->connectID || st.since_ns == 0) {
    st.half_open_connect_id = peer->connectID;
    st.since_ns = now_ns;
    return;
  }
  if (now_ns - st.since_ns > static_cast<int64_t>(options_.limits.handshake_timeout_ms) * 1'000'000) {
    log_write(LogLevel::debug, "server", "dropped half-open " + PeerLink::describe(peer));
    link(peer).reset();
    st = PeerState{};
  }
}

}  // namespace nshost
