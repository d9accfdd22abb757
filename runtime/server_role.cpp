#include "runtime/server_role.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "runtime/bundle.hpp"
#include "runtime/log.hpp"

namespace nshost {
namespace {

void on_grace_timer(uv_timer_t* t) {
  if (t->data) static_cast<ServerRole*>(t->data)->finish_now();
}

std::string undelivered_note(size_t undelivered) {
  if (undelivered == 0) return "";
  return " (" + std::to_string(undelivered) + " reliable message(s) not acknowledged by the client)";
}

uint8_t channel_id(Channel channel) {
  return channel == Channel::reliable ? wire::kChannelReliable : wire::kChannelUnreliable;
}

}  // namespace

ServerRole::ServerRole(uv_loop_t* loop, Options options)
    : loop_(loop),
      options_(std::move(options)),
      slots_(options_.max_clients),
      sessions_(options_.max_clients),
      slot_entries_(options_.max_clients),
      tick_(loop, options_.tick_rate_hz,
            [this](const TickScheduler::Beat& beat, int64_t now) { on_tick(beat, now); }) {}

ServerRole::~ServerRole() {
  tick_.stop();
  stop_timer_.close();
  grace_timer_.close();
  ack_timer_.close();
  endpoint_.reset();
  script_.reset();
}

bool ServerRole::start(std::string& error) {
  exit_code_ = 1;
  ENetAddress address{};
  in_addr parsed{};
  if (inet_pton(AF_INET, options_.bind.c_str(), &parsed) != 1) {
    error = "nshost: --bind: '" + options_.bind + "' is not an IPv4 address";
    exit_code_ = 2;
    return false;
  }
  address.host = parsed.s_addr;
  address.port = options_.port;
  EnetEndpoint::Config config;
  config.bind = &address;
  config.peer_count =
      std::min<size_t>(options_.max_clients + options_.limits.max_pending_handshakes, ENET_PROTOCOL_MAXIMUM_PEER_ID);
  config.channel_count = wire::kChannelCount;
  config.max_message_bytes = options_.max_message_bytes;
  config.netsim = options_.netsim;
  config.log_tag = "server";
  config.receive_batch = kServerReceiveBatch;
  config.min_service_gap_ms = options_.coalesce_ms;
  endpoint_ = EnetEndpoint::create(loop_, config, *this, error);
  if (!endpoint_) {
    error = "nshost: " + error;
    return false;
  }
  peers_.assign(endpoint_->host()->peerCount, PeerState{});
  // Before the script loads: its top-level chunk may already call sys.quit().
  if (int rc = stop_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  stop_timer_.get()->data = this;
  endpoint_->enable_connect_challenge();
  endpoint_->set_connect_filter([this](const ENetAddress& from) { return admit_connect(from); });
  try {
    script_ = std::make_unique<ScriptHost>(
        *this, &open_server_modules, "server", ScriptHost::Sandbox{options_.sandbox, options_.memory_limit_bytes, options_.instruction_budget,
                                              options_.handler_timeout_ms, options_.allow_net});
  } catch (const std::exception& e) {
    error = std::string("nshost: cannot create the Lua state: ") + e.what();
    return false;
  }
  if (!script_->load(options_.script, error)) return false;
  prepare_bundle();
  if (int rc = tick_.start(); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  if (int rc = ack_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  ack_timer_.get()->data = this;
  uv_timer_start(
      ack_timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<ServerRole*>(t->data)->send_acks();
      },
      kAckPollMs, kAckPollMs);
  exit_code_ = requested_exit_code_;
  log_write(LogLevel::info, "server",
            "listening on " + options_.bind + ":" + std::to_string(port()) + " (max_clients=" +
                std::to_string(options_.max_clients) + ", tick_rate=" + std::to_string(options_.tick_rate_hz) +
                " Hz, script=" + options_.script + ")");
  return true;
}

ServerRole::PeerState& ServerRole::state_of(ENetPeer* peer) {
  return peers_[static_cast<size_t>(peer - endpoint_->host()->peers)];
}

void ServerRole::on_enet_event(ENetEvent& event) {
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT: {
      PeerState& st = state_of(event.peer);
      st = PeerState{};
      if (stopping_) {
        enet_peer_disconnect_now(event.peer, static_cast<uint32_t>(wire::DisconnectCode::shutdown));
        return;
      }
      if (!admit_handshake(event.peer)) return;
      st.phase = Phase::handshake;
      st.since_ns = monotonic_ns();
      // ENet's packet throttle drops unreliable packets to a peer whose RTT
      // varies; for snapshots sent once per tick that loses the freshest
      // state (bench/: up to a quarter of one peer's snapshots under load).
      // Deceleration 0 keeps the throttle open; it is told to the client too.
      enet_peer_throttle_configure(event.peer, ENET_PEER_PACKET_THROTTLE_INTERVAL, ENET_PEER_PACKET_THROTTLE_ACCELERATION,
                                   0);
      log_write(LogLevel::debug, "server", "peer " + format_address(event.peer->address) + " connected, awaiting hello");
      break;
    }
    case ENET_EVENT_TYPE_RECEIVE: {
      if (!within_message_rate(event.peer)) return;
      if (const PeerState& st = state_of(event.peer); st.phase == Phase::live) sessions_.confirm(st.id.slot);
      std::string_view bytes(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength);
      if (event.channelID == wire::kChannelControl) on_control(event.peer, bytes);
      else on_data(event.peer, event.channelID, bytes);
      break;
    }
    case ENET_EVENT_TYPE_DISCONNECT:
      on_peer_gone(event.peer, event.data);
      break;
    case ENET_EVENT_TYPE_NONE:
      break;
  }
}

void ServerRole::on_control(ENetPeer* peer, std::string_view bytes) {
  PeerState& st = state_of(peer);
  auto type = wire::peek_type(bytes);
  if (type == wire::ControlType::hello && st.phase == Phase::handshake) {
    on_hello(peer, bytes);
    return;
  }
  if (type == wire::ControlType::ack && st.phase == Phase::live) {
    on_ack(peer, bytes);
    return;
  }
  if (type == wire::ControlType::bundle_request && st.phase == Phase::live) {
    std::string error;
    if (wire::decode_bundle_request(bytes, error)) serve_bundle(peer);
    else log_write(LogLevel::warn, "server", "malformed bundle request from " + format_address(peer->address) + ": " + error);
    return;
  }
  ++dropped_messages_;
  log_write(LogLevel::debug, "server",
            "ignored unexpected control message from " + format_address(peer->address) + " (" +
                std::to_string(bytes.size()) + " bytes)");
}

void ServerRole::refuse(ENetPeer* peer, std::string_view reason) {
  wire::Notice notice{wire::ControlType::reject, std::string(reason)};
  std::string bytes = wire::encode_notice(notice);
  enet_peer_send(peer, wire::kChannelControl,
                 enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
  enet_peer_disconnect_later(peer, static_cast<uint32_t>(wire::DisconnectCode::rejected));
  PeerState& st = state_of(peer);
  st.phase = Phase::rejected;
  st.since_ns = monotonic_ns();
  endpoint_->mark_dirty();
}

void ServerRole::on_hello(ENetPeer* peer, std::string_view bytes) {
  wire::Hello hello;
  std::string error;
  const std::string who = format_address(peer->address);
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
  if (!hello.session_token.empty()) {
    if (auto slot = sessions_.find(hello.session_token)) {
      ENetPeer* old = slot_entries_[*slot].peer;
      if (sessions_.lost(*slot)) {
        if (resume(peer, *slot, hello)) return;
      } else if (old && state_of(old).phase == Phase::live && old->address.host == peer->address.host &&
                 old->address.port == peer->address.port) {
        // The same client socket dialled again: its old link is dead on its side.
        log_write(LogLevel::info, "server", "client " + who + " re-dialled; replaced its stale link");
        enet_peer_reset(old);
        enter_grace(old);
        if (resume(peer, *slot, hello)) return;
      } else {
        // The session still has its link: a token never takes a slot over.
        log_write(LogLevel::warn, "server",
                  "rejected " + who + ": session_in_use (slot " + std::to_string(*slot) + " is still connected)");
        refuse(peer, "session_in_use");
        return;
      }
    } else {
      log_write(LogLevel::info, "server", "unknown session token from " + who + ": not a resume, joining fresh");
    }
  }
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
        return;
    }
  }
  if (!id) {
    log_write(LogLevel::info, "server", "rejected " + who + ": full (" + std::to_string(options_.max_clients) + " slots)");
    refuse(peer, "full");
    return;
  }
  PeerState& st = state_of(peer);
  st.phase = Phase::live;
  st.id = *id;
  st.since_ns = monotonic_ns();
  slot_entries_[id->slot].peer = peer;
  slot_entries_[id->slot].replay = ReliableReplay(options_.resume_buffer_bytes);
  script_->protect("creating a client handle", [&](lua_State* L) {
    push_client_handle(L, *id);
    slot_entries_[id->slot].handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
  });
  send_welcome(peer, *id, false);
  log_write(LogLevel::info, "server", "client " + who + " joined in slot " + std::to_string(id->slot));

  const std::string& handoff = hello.handoff;
  script_->invoke("connect", [&](lua_State* S) {
    push_handle(*id);
    lua_pushlstring(S, handoff.data(), handoff.size());
    return 2;
  });
}

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
  std::string reply = wire::encode_welcome(welcome);
  enet_peer_send(peer, wire::kChannelControl,
                 enet_packet_create(reply.data(), reply.size(), ENET_PACKET_FLAG_RELIABLE));
  endpoint_->mark_dirty();
}

bool ServerRole::resume(ENetPeer* peer, uint32_t slot, const wire::Hello& hello) {
  SlotEntry& entry = slot_entries_[slot];
  ReliableReplay& replay = entry.replay;
  // Both sides must still hold every reliable message the other lacks.
  if (!replay.acknowledge(hello.received) || !replay.can_replay_from(hello.received) ||
      hello.replay_floor > replay.received()) {
    log_write(LogLevel::warn, "server",
              "client " + format_address(peer->address) + " cannot resume slot " + std::to_string(slot) +
                  ": reliable messages cannot be replayed (it has " + std::to_string(hello.received) + " of " +
                  std::to_string(replay.numbered()) + ", we hold from " + std::to_string(replay.replay_floor()) +
                  "; we have " + std::to_string(replay.received()) + ", it holds from " +
                  std::to_string(hello.replay_floor) + "; --resume-buffer-size)");
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
  size_t replayed = 0;
  replay.for_each_after(hello.received, [&](const ReliableReplay::Payload& bytes) {
    ENetPacket* packet = enet_packet_create(bytes->data(), bytes->size(), ENET_PACKET_FLAG_RELIABLE);
    if (packet && enet_peer_send(peer, wire::kChannelReliable, packet) == 0) ++replayed;
    else if (packet) enet_packet_destroy(packet);
  });
  log_write(LogLevel::info, "server",
            "client " + format_address(peer->address) + " resumed slot " + std::to_string(slot) + " (replayed " +
                std::to_string(replayed) + " reliable message(s))");
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
  log_write(LogLevel::info, "server",
            "client in slot " + std::to_string(id.slot) + " lost its link; holding the slot for " +
                std::to_string(options_.resume_grace_ms) + " ms");
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
  log_write(LogLevel::info, "server",
            "client in slot " + std::to_string(slot) + " left: " + reason + undelivered_note(undelivered));
  sessions_.revoke(slot);  // the token resumes nothing from here on
  // Still marked lost while the handler runs, so liveness() says departing:
  // slot() answers and nothing is sent.
  sessions_.mark_lost(slot, 0);
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
    log_write(LogLevel::warn, "server", "rejected " + format_address(peer->address) + ": rate_limit");
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
            "dropped " + format_address(peer->address) + ": too many pending handshakes (" +
                std::to_string(pending) + ")");
  enet_peer_disconnect_now(peer, static_cast<uint32_t>(wire::DisconnectCode::rejected));
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
    enet_peer_disconnect_now(victim, static_cast<uint32_t>(wire::DisconnectCode::rejected));
  else
    enet_peer_reset(victim);
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
  bool half_open = peer->state == ENET_PEER_STATE_ACKNOWLEDGING_CONNECT ||
                   peer->state == ENET_PEER_STATE_CONNECTION_PENDING ||
                   peer->state == ENET_PEER_STATE_CONNECTION_SUCCEEDED;
  if (!half_open) {
    st.half_open_connect_id = 0;
    return;
  }
  if (st.half_open_connect_id != peer->connectID || st.since_ns == 0) {
    st.half_open_connect_id = peer->connectID;
    st.since_ns = now_ns;
    return;
  }
  if (now_ns - st.since_ns > static_cast<int64_t>(options_.limits.handshake_timeout_ms) * 1'000'000) {
    log_write(LogLevel::debug, "server", "dropped half-open " + format_address(peer->address));
    enet_peer_reset(peer);
    st = PeerState{};
  }
}

void ServerRole::on_data(ENetPeer* peer, uint8_t channel, std::string_view bytes) {
  PeerState& st = state_of(peer);
  if (st.phase != Phase::live) {
    ++dropped_messages_;
    return;
  }
  const char* channel_text = channel == wire::kChannelReliable ? "reliable" : "unreliable";
  ClientId id = st.id;
  if (channel == wire::kChannelReliable) slot_entries_[id.slot].replay.on_received();
  script_->invoke("receive", [&](lua_State* L) {
    push_handle(id);
    lua_pushlstring(L, bytes.data(), bytes.size());
    lua_pushstring(L, channel_text);
    return 3;
  });
}

void ServerRole::on_peer_gone(ENetPeer* peer, uint32_t code) {
  PeerState& st = state_of(peer);
  // A leave or a hop ends the session; any other code from a client (none
  // for an ENet timeout, or one a client never sends) is a dropped link, held
  // for a resume.
  bool deliberate = code == static_cast<uint32_t>(wire::DisconnectCode::leave) ||
                    code == static_cast<uint32_t>(wire::DisconnectCode::hop);
  if (st.phase == Phase::live && !stopping_ && st.depart_reason.empty() && options_.resume_grace_ms > 0 &&
      !deliberate) {
    enter_grace(peer);
  } else if (st.phase == Phase::live || st.phase == Phase::departing) {
    std::string reason = stopping_                  ? "shutdown"
                         : !st.depart_reason.empty() ? st.depart_reason
                         : code == static_cast<uint32_t>(wire::DisconnectCode::leave) ? "left"
                         : code == static_cast<uint32_t>(wire::DisconnectCode::hop)   ? "hop"
                                                                                         : "timeout";
    finish_departure(peer, reason);
  } else {
    st = PeerState{};
  }
  // Not finish() here: that destroys the endpoint, which is mid-service.
  if (stopping_ && !finished_ && all_peers_closed() && grace_timer_)
    uv_timer_start(grace_timer_.get(), on_grace_timer, 0, 0);
}

void ServerRole::finish_departure(ENetPeer* peer, const std::string& reason) {
  PeerState& st = state_of(peer);
  ClientId id = st.id;
  st.phase = Phase::departing;  // slot() still answers inside the handler
  size_t undelivered = slot_entries_[id.slot].replay.held_count();
  log_write(LogLevel::info, "server",
            "client in slot " + std::to_string(id.slot) + " left: " + reason + undelivered_note(undelivered));
  if (!stopping_) {
    script_->invoke("disconnect", [&](lua_State* L) {
      push_handle(id);
      lua_pushstring(L, reason.c_str());
      lua_pushinteger(L, static_cast<lua_Integer>(undelivered));
      return 3;
    });
  }
  SlotEntry& entry = slot_entries_[id.slot];
  luaL_unref(script_->state(), LUA_REGISTRYINDEX, entry.handle_ref);
  entry = SlotEntry{};
  slots_.release(id);
  sessions_.revoke(id.slot);
  st = PeerState{};
}

void ServerRole::push_handle(ClientId id) {
  lua_rawgeti(script_->state(), LUA_REGISTRYINDEX, slot_entries_[id.slot].handle_ref);
}

namespace {

// CPU time of the calling thread: tells a tick's own work from time it spent
// preempted on a shared machine.
int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

void ServerRole::on_tick(const TickScheduler::Beat& beat, int64_t now_ns) {
  int64_t cpu_start_ns = options_.stats ? thread_cpu_ns() : 0;
  if (beat.skipped > 0)
    log_write(LogLevel::debug, "server",
              "tick " + std::to_string(beat.tick_num) + " ran " + std::to_string(beat.lateness_ns / 1'000'000) +
                  " ms late; skipped " + std::to_string(beat.skipped) + " beat(s)");
  expire_stale_peers(now_ns);
  expire_lost_sessions(now_ns);
  report_refused(now_ns);
  pump_bundles();
  script_->invoke("tick", [&](lua_State* L) {
    lua_pushinteger(L, static_cast<lua_Integer>(beat.tick_num));
    return 1;
  });
  int64_t flush_start_ns = options_.stats ? monotonic_ns() : 0;
  // The snapshots a tick sends leave with the tick, so its duration counts them.
  if (endpoint_) endpoint_->flush();
  if (options_.stats && endpoint_) {
    int64_t end_ns = monotonic_ns();
    const ENetHost* host = endpoint_->host();
    char line[224];
    std::snprintf(line, sizeof line,
                  "stats t=%.6f tick=%llu dur_us=%lld late_us=%lld cpu_us=%lld sent_bytes=%u sent_packets=%u "
                  "flush_us=%lld",
                  static_cast<double>(end_ns) / 1e9, static_cast<unsigned long long>(beat.tick_num),
                  static_cast<long long>((end_ns - now_ns) / 1000), static_cast<long long>(beat.lateness_ns / 1000),
                  static_cast<long long>((thread_cpu_ns() - cpu_start_ns) / 1000), host->totalSentData,
                  host->totalSentPackets, static_cast<long long>((end_ns - flush_start_ns) / 1000));
    log_write(LogLevel::info, "server", line);
  }
}

void ServerRole::expire_stale_peers(int64_t now_ns) {
  ENetHost* host = endpoint_->host();
  for (size_t i = 0; i < host->peerCount; ++i) {
    PeerState& st = peers_[i];
    ENetPeer* peer = &host->peers[i];
    int64_t handshake_timeout_ns = static_cast<int64_t>(options_.limits.handshake_timeout_ms) * 1'000'000;
    if (st.phase == Phase::idle) {
      expire_half_open(i, now_ns);
    } else if (st.phase == Phase::handshake && now_ns - st.since_ns > handshake_timeout_ns) {
      log_write(LogLevel::info, "server",
                "dropped " + format_address(peer->address) + ": no hello within " +
                    std::to_string(options_.limits.handshake_timeout_ms) + " ms");
      enet_peer_disconnect_now(peer, static_cast<uint32_t>(wire::DisconnectCode::rejected));
      st = PeerState{};
    } else if (st.phase == Phase::rejected && now_ns - st.since_ns > kDepartTimeoutNs) {
      enet_peer_reset(peer);
      st = PeerState{};
    } else if (st.phase == Phase::departing && now_ns - st.since_ns > kDepartTimeoutNs) {
      enet_peer_reset(peer);
      finish_departure(peer, st.depart_reason.empty() ? "timeout" : st.depart_reason);
    }
  }
}

ServerApi::Liveness ServerRole::liveness(ClientId id) const {
  if (!slots_.valid(id)) return Liveness::stale;
  if (sessions_.lost(id.slot)) return Liveness::departing;  // in its grace window: nothing is sent
  const ENetPeer* peer = slot_entries_[id.slot].peer;
  if (!peer) return Liveness::stale;
  const PeerState& st = peers_[static_cast<size_t>(peer - endpoint_->host()->peers)];
  return st.phase == Phase::live ? Liveness::live : Liveness::departing;
}

ENetPacket* ServerRole::make_packet(std::string_view data, Channel channel) const {
  uint32_t flags = channel == Channel::reliable ? ENET_PACKET_FLAG_RELIABLE : ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT;
  return enet_packet_create(data.data(), data.size(), flags);
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
  if (enet_peer_send(entry.peer, wire::kChannelReliable, packet) != 0) return false;
  if (options_.resume_grace_ms > 0) entry.replay.retain_sent(payload);  // no resume, no replay
  return true;
}

bool ServerRole::send(ClientId id, std::string_view data, Channel channel, std::string& error) {
  if (channel == Channel::reliable && slots_.valid(id)) {
    auto payload = std::make_shared<const std::string>(data);
    ENetPacket* packet = make_packet(data, channel);
    if (!packet) return false;
    bool ok = send_reliable(id.slot, payload, packet, error);
    if (packet->referenceCount == 0) enet_packet_destroy(packet);
    if (ok) endpoint_->mark_dirty();
    return ok;
  }
  if (liveness(id) != Liveness::live) return false;
  ENetPacket* packet = make_packet(data, channel);
  if (!packet) return false;
  if (enet_peer_send(slot_entries_[id.slot].peer, channel_id(channel), packet) != 0) {
    enet_packet_destroy(packet);
    return false;
  }
  endpoint_->mark_dirty();
  return true;
}

size_t ServerRole::broadcast(std::string_view data, Channel channel) {
  if (slots_.occupied_count() == 0) return 0;
  // One packet shared by every peer: ENet reference-counts it.
  ENetPacket* packet = make_packet(data, channel);
  if (!packet) return 0;
  size_t sent = 0;
  ReliableReplay::Payload payload;
  if (channel == Channel::reliable) payload = std::make_shared<const std::string>(data);
  std::string error;
  for (uint32_t slot = 0; slot < options_.max_clients; ++slot) {
    if (payload) {
      sent += send_reliable(slot, payload, packet, error);
      continue;
    }
    ENetPeer* peer = slot_entries_[slot].peer;
    if (!peer || state_of(peer).phase != Phase::live) continue;
    if (enet_peer_send(peer, channel_id(channel), packet) == 0) ++sent;
  }
  if (packet->referenceCount == 0) enet_packet_destroy(packet);
  if (sent) endpoint_->mark_dirty();
  return sent;
}

size_t ServerRole::broadcast(std::string_view data, Channel channel, std::span<const ClientId> targets) {
  ENetPacket* packet = nullptr;
  size_t sent = 0;
  ReliableReplay::Payload payload;
  std::string error;
  for (const ClientId& id : targets) {
    if (channel == Channel::reliable && slots_.valid(id)) {
      if (!packet && !(packet = make_packet(data, channel))) return 0;
      if (!payload) payload = std::make_shared<const std::string>(data);
      sent += send_reliable(id.slot, payload, packet, error);
      continue;
    }
    if (liveness(id) != Liveness::live) continue;
    if (!packet && !(packet = make_packet(data, channel))) return 0;
    if (enet_peer_send(slot_entries_[id.slot].peer, channel_id(channel), packet) == 0) ++sent;
  }
  if (packet && packet->referenceCount == 0) enet_packet_destroy(packet);
  if (sent) endpoint_->mark_dirty();
  return sent;
}

bool ServerRole::kick(ClientId id, std::string_view reason) {
  if (slots_.valid(id) && sessions_.lost(id.slot)) {
    sessions_.expire_now(id.slot, "kicked");  // a kick skips the grace window
    return true;
  }
  if (liveness(id) != Liveness::live) return false;
  ENetPeer* peer = slot_entries_[id.slot].peer;
  std::string bytes = wire::encode_notice(wire::Notice{wire::ControlType::kick, std::string(reason)});
  enet_peer_send(peer, wire::kChannelControl,
                 enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
  enet_peer_disconnect_later(peer, static_cast<uint32_t>(wire::DisconnectCode::kicked));
  PeerState& st = state_of(peer);
  st.phase = Phase::departing;
  st.since_ns = monotonic_ns();
  st.depart_reason = "kicked";
  sessions_.revoke(id.slot);  // a kicked client cannot resume
  endpoint_->mark_dirty();
  log_write(LogLevel::info, "server", "kicking slot " + std::to_string(id.slot) + ": " + std::string(reason));
  return true;
}

void ServerRole::on_ack(ENetPeer* peer, std::string_view bytes) {
  uint64_t count = 0;
  std::string error;
  const PeerState& st = state_of(peer);
  if (!wire::decode_ack(bytes, count, error)) {
    log_write(LogLevel::warn, "server", "malformed ack from " + format_address(peer->address) + ": " + error);
    return;
  }
  ReliableReplay& replay = slot_entries_[st.id.slot].replay;
  if (!replay.acknowledge(count))
    log_write(LogLevel::warn, "server",
              "ignored ack from " + format_address(peer->address) + ": " + std::to_string(count) +
                  " received, but only " + std::to_string(replay.numbered()) + " sent");
}

void ServerRole::send_acks() {
  if (!endpoint_) return;
  int64_t now = monotonic_ns();
  for (SlotEntry& entry : slot_entries_) {
    if (!entry.peer || state_of(entry.peer).phase != Phase::live || !entry.replay.take_ack_due(now)) continue;
    send_control(entry.peer, wire::encode_ack(entry.replay.received()));
  }
}

void ServerRole::send_control(ENetPeer* peer, const std::string& bytes) {
  enet_peer_send(peer, wire::kChannelControl,
                 enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
  endpoint_->mark_dirty();
}

bool ServerRole::redirect(ClientId id, std::string_view url, std::string_view handoff) {
  if (liveness(id) != Liveness::live) return false;
  ENetPeer* peer = slot_entries_[id.slot].peer;
  send_control(peer, wire::encode_redirect(wire::Redirect{std::string(url), std::string(handoff)}));
  enet_peer_disconnect_later(peer, static_cast<uint32_t>(wire::DisconnectCode::redirected));
  PeerState& st = state_of(peer);
  st.phase = Phase::departing;
  st.since_ns = monotonic_ns();
  st.depart_reason = "redirect";
  sessions_.revoke(id.slot);  // the session moves to the destination; nothing to resume here
  log_write(LogLevel::info, "server", "redirecting slot " + std::to_string(id.slot) + " to " + std::string(url));
  return true;
}

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
  if (st.bundle_next_part != kNoTransfer) {
    // One transfer per client at a time: a repeat while one is under way is
    // ignored (and counted).
    if (st.bundle_requests_ignored++ == 0)
      log_write(LogLevel::info, "server",
                "ignoring repeated bundle requests from " + format_address(peer->address) + " during its transfer");
    return;
  }
  if (st.bundle_transfers >= kMaxBundleTransfers) {
    log_write(LogLevel::warn, "server",
              "kicking " + format_address(peer->address) + ": bundle_requests (" +
                  std::to_string(st.bundle_transfers) + " transfers already, " +
                  std::to_string(st.bundle_requests_ignored) + " repeats ignored)");
    kick(st.id, "bundle_requests");
    return;
  }
  ++st.bundle_transfers;
  st.bundle_next_part = 0;
  st.bundle_parts_out = 0;
  st.bundle_transfer_id = ++bundle_transfer_count_;
  size_t index = static_cast<size_t>(peer - endpoint_->host()->peers);
  if (std::find(bundle_senders_.begin(), bundle_senders_.end(), index) == bundle_senders_.end())
    bundle_senders_.push_back(index);
  pump_bundle(index);
}

namespace {

// Names the transfer a bundle part belongs to, for its release callback.
struct PartTicket {
  ServerRole* role;
  size_t peer_index;
  uint64_t transfer_id;
};

}  // namespace

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
    ++st.bundle_next_part;
    sent = true;
  }
  if (sent) endpoint_->mark_dirty();
  if (sent && st.bundle_next_part == bundle_parts_.size())
    log_write(LogLevel::info, "server",
              "sent script bundle (" + std::to_string(bundle_size_) + " bytes) to " + format_address(peer->address));
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

void ServerRole::request_stop(int exit_code) { defer_stop(exit_code); }

void ServerRole::on_script_error() {
  if (options_.strict && !stopping_) {
    log_write(LogLevel::error, "server", "--strict: stopping after a script error");
    defer_stop(1);
  }
}

void ServerRole::defer_stop(int exit_code) {
  if (stopping_) return;
  requested_exit_code_ = std::max(requested_exit_code_, exit_code);
  exit_code_ = std::max(exit_code_, exit_code);
  uv_timer_start(
      stop_timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<ServerRole*>(t->data)->begin_shutdown();
      },
      0, 0);
}

void ServerRole::begin_shutdown() {
  if (finished_) return;
  if (stopping_) {
    finish();
    return;
  }
  log_write(LogLevel::info, "server", "shutting down");
  script_->invoke("shutdown");
  stopping_ = true;
  tick_.stop();
  ENetHost* host = endpoint_->host();
  for (size_t i = 0; i < host->peerCount; ++i) {
    ENetPeer* peer = &host->peers[i];
    if (peer->state == ENET_PEER_STATE_DISCONNECTED) continue;
    if (peers_[i].phase == Phase::live)  // a last ack: the client learns exactly what arrived
      send_control(peer, wire::encode_ack(slot_entries_[peers_[i].id.slot].replay.received()));
    if (peers_[i].phase == Phase::live || peers_[i].phase == Phase::departing)
      enet_peer_disconnect_later(peer, static_cast<uint32_t>(wire::DisconnectCode::shutdown));
    else
      enet_peer_disconnect_now(peer, static_cast<uint32_t>(wire::DisconnectCode::shutdown));
  }
  endpoint_->flush();
  if (all_peers_closed()) {
    finish();
    return;
  }
  if (grace_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0) {
    grace_timer_.get()->data = this;
    uv_timer_start(grace_timer_.get(), on_grace_timer, kShutdownGraceMs, 0);
  } else {
    finish();
  }
}

bool ServerRole::all_peers_closed() const {
  // Not host->connectedPeers: ENet lowers it when a disconnect is sent, before
  // the peer has acknowledged it.
  const ENetHost* host = endpoint_->host();
  for (size_t i = 0; i < host->peerCount; ++i)
    if (host->peers[i].state != ENET_PEER_STATE_DISCONNECTED) return false;
  return true;
}

void ServerRole::finish_now() { finish(); }

void ServerRole::finish() {
  if (finished_) return;
  finished_ = true;
  tick_.stop();
  stop_timer_.close();
  grace_timer_.close();
  ack_timer_.close();
  endpoint_.reset();
  log_write(LogLevel::info, "server", "stopped");
  if (on_finished) on_finished();
}

}  // namespace nshost
