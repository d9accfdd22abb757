#include "runtime/roles/server_role.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "runtime/script/bundle.hpp"
#include "runtime/core/log.hpp"
#include "runtime/ops/reload.hpp"
#include "runtime/roles/local_link.hpp"
#include "runtime/roles/peer_link.hpp"
#include "runtime/roles/server_cluster.hpp"
#include "runtime/rooms/cluster_matchmaking.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost {
namespace {

void on_grace_timer(uv_timer_t* t) {
  if (t->data) static_cast<ServerRole*>(t->data)->finish_now();
}

}  // namespace

std::string ServerRole::undelivered_note(size_t undelivered) {
  if (undelivered == 0) return "";
  return " (" + std::to_string(undelivered) + " reliable message(s) not acknowledged by the client)";
}

ServerRole::ServerRole(uv_loop_t* loop, Options options)
    : loop_(loop),
      options_(std::move(options)),
      slots_(options_.max_clients),
      sessions_(options_.max_clients),
      slot_entries_(options_.max_clients),
      tick_(loop, options_.tick_rate_hz,
            [this](const TickScheduler::Beat& beat, int64_t now) { on_tick(beat, now); }),
      metrics_(1.0 / options_.tick_rate_hz) {}

ServerRole::~ServerRole() {
  watcher_.reset();
  admin_.reset();
  tick_.stop();
  stop_timer_.close();
  grace_timer_.close();
  ack_timer_.close();
  stop_cluster();
  rooms_.reset();  // the rooms' states before the endpoint they send through
  endpoint_.reset();
  script_.reset();
}

bool ServerRole::start(std::string& error) {
  exit_code_ = 1;
  started_ns_ = monotonic_ns();
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
  // One more than ENet's peers: the last is a listen server's local client.
  peers_.assign(endpoint_->host()->peerCount + 1, PeerState{});
  // Before the script loads: its top-level chunk may already call sys.quit().
  if (int rc = stop_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  stop_timer_.get()->data = this;
  endpoint_->enable_connect_challenge();
  endpoint_->set_connect_filter([this](const ENetAddress& from) { return admit_connect(from); });
  if (!start_rooms(error)) return false;  // before the script: it defines room types as it loads
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
  if (options_.watch && !start_watch(error)) return false;
  if (!start_cluster(error)) return false;
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
  if (!start_admin(error)) return false;
  exit_code_ = requested_exit_code_;
  log_write(LogLevel::info, "server",
            "listening on " + options_.bind + ":" + std::to_string(port()) + " (max_clients=" +
                std::to_string(options_.max_clients) + ", tick_rate=" + std::to_string(options_.tick_rate_hz) +
                " Hz, script=" + options_.script + ")");
  // After the line above, which tools read the UDP port from.
  if (admin_) log_write(LogLevel::info, "server", "admin: listening on " + admin_->url());
  return true;
}

size_t ServerRole::peer_index(const ENetPeer* peer) const {
  if (LocalLink::of(peer)) return peers_.size() - 1;
  return static_cast<size_t>(peer - endpoint_->host()->peers);
}

ServerRole::PeerState& ServerRole::state_of(ENetPeer* peer) { return peers_[peer_index(peer)]; }

void ServerRole::attach_local(LocalLink& link) {
  local_ = &link;
  link.attach(LocalLink::Side::server, *this);
}

void ServerRole::on_enet_event(ENetEvent& event) {
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT:
      on_peer_connect(event.peer);
      break;
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

void ServerRole::on_peer_connect(ENetPeer* peer) {
  PeerState& st = state_of(peer);
  st = PeerState{};
  if (stopping_) {
    link(peer).disconnect_now(static_cast<uint32_t>(wire::DisconnectCode::shutdown));
    return;
  }
  if (!admit_handshake(peer)) return;
  st.phase = Phase::handshake;
  st.since_ns = monotonic_ns();
  // ENet's packet throttle drops unreliable packets to a peer whose RTT
  // varies; for snapshots sent once per tick that loses the freshest state
  // (bench/: up to a quarter of one peer's snapshots under load).
  // Deceleration 0 keeps the throttle open; it is told to the client too.
  link(peer).keep_throttle_open();
  log_write(LogLevel::debug, "server", "peer " + PeerLink::describe(peer) + " connected, awaiting hello");
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
    else
      log_write(LogLevel::warn, "server", "malformed bundle request from " + PeerLink::describe(peer) + ": " + error);
    return;
  }
  ++dropped_messages_;
  log_write(LogLevel::debug, "server",
            "ignored unexpected control message from " + PeerLink::describe(peer) + " (" +
                std::to_string(bytes.size()) + " bytes)");
}

void ServerRole::on_data(ENetPeer* peer, uint8_t channel, std::string_view bytes) {
  PeerState& st = state_of(peer);
  if (st.phase != Phase::live) {
    ++dropped_messages_;
    return;
  }
  if (channel == wire::kChannelRoomReliable || channel == wire::kChannelRoomUnreliable) {
    on_room_packet(peer, channel, bytes);
    return;
  }
  const char* channel_text = channel_name(PeerLink::channel_of(channel));
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
  log_event(LogLevel::info, "server", "disconnect",
            "client in slot " + std::to_string(id.slot) + " left: " + reason + undelivered_note(undelivered),
            {{"slot", id.slot}, {"address", PeerLink::describe(peer)}, {"reason", reason}});
  if (!stopping_) leave_rooms(id.slot, reason);
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
  last_tick_num_ = beat.tick_num;
  script_->invoke("tick", [&](lua_State* L) {
    lua_pushinteger(L, static_cast<lua_Integer>(beat.tick_num));
    return 1;
  });
  send_clocks(now_ns);
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
  int64_t end_ns = monotonic_ns();
  metrics_.ticks.record(end_ns, static_cast<double>(end_ns - now_ns) / 1e9, 1.0 / tick_.rate_hz());
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
                "dropped " + PeerLink::describe(peer) + ": no hello within " +
                    std::to_string(options_.limits.handshake_timeout_ms) + " ms");
      link(peer).disconnect_now(static_cast<uint32_t>(wire::DisconnectCode::rejected));
      st = PeerState{};
    } else if (st.phase == Phase::rejected && now_ns - st.since_ns > kDepartTimeoutNs) {
      link(peer).reset();
      st = PeerState{};
    } else if (st.phase == Phase::departing && now_ns - st.since_ns > kDepartTimeoutNs) {
      link(peer).reset();
      finish_departure(peer, st.depart_reason.empty() ? "timeout" : st.depart_reason);
    }
  }
}

ServerApi::Liveness ServerRole::liveness(ClientId id) const {
  if (!slots_.valid(id)) return Liveness::stale;
  if (sessions_.lost(id.slot)) return Liveness::departing;  // in its grace window: nothing is sent
  const ENetPeer* peer = slot_entries_[id.slot].peer;
  if (!peer) return Liveness::stale;
  const PeerState& st = peers_[peer_index(peer)];
  return st.phase == Phase::live ? Liveness::live : Liveness::departing;
}

bool ServerRole::send(ClientId id, std::string_view data, Channel channel, std::string& error) {
  if (channel == Channel::reliable && slots_.valid(id)) {
    auto payload = std::make_shared<const std::string>(data);
    ENetPacket* packet = PeerLink::make_packet(data, channel);
    if (!packet) return false;
    bool ok = send_reliable(id.slot, payload, packet, error);
    if (packet->referenceCount == 0) enet_packet_destroy(packet);
    if (ok) endpoint_->mark_dirty();
    return ok;
  }
  return liveness(id) == Liveness::live && link(slot_entries_[id.slot].peer).send(data, channel);
}

size_t ServerRole::broadcast(std::string_view data, Channel channel) {
  if (slots_.occupied_count() == 0) return 0;
  // One packet shared by every peer: ENet reference-counts it.
  ENetPacket* packet = PeerLink::make_packet(data, channel);
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
    sent += link(peer).queue(packet, channel);
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
      if (!packet && !(packet = PeerLink::make_packet(data, channel))) return 0;
      if (!payload) payload = std::make_shared<const std::string>(data);
      sent += send_reliable(id.slot, payload, packet, error);
      continue;
    }
    if (liveness(id) != Liveness::live) continue;
    if (!packet && !(packet = PeerLink::make_packet(data, channel))) return 0;
    sent += link(slot_entries_[id.slot].peer).queue(packet, channel);
  }
  if (packet && packet->referenceCount == 0) enet_packet_destroy(packet);
  if (sent) endpoint_->mark_dirty();
  return sent;
}

bool ServerRole::kick(ClientId id, std::string_view reason) {
  if (slots_.valid(id) && sessions_.lost(id.slot)) {
    sessions_.expire_now(id.slot, "kicked");  // a kick skips the grace window
    ++metrics_.kicks[static_cast<size_t>(ops::classify_kick(reason))];
    return true;
  }
  if (liveness(id) != Liveness::live) return false;
  ENetPeer* peer = slot_entries_[id.slot].peer;
  link(peer).send_control(wire::encode_notice(wire::Notice{wire::ControlType::kick, std::string(reason)}));
  link(peer).disconnect_later(static_cast<uint32_t>(wire::DisconnectCode::kicked));
  PeerState& st = state_of(peer);
  st.phase = Phase::departing;
  st.since_ns = monotonic_ns();
  st.depart_reason = "kicked";
  sessions_.revoke(id.slot);  // a kicked client cannot resume
  endpoint_->mark_dirty();
  ++metrics_.kicks[static_cast<size_t>(ops::classify_kick(reason))];
  log_event(LogLevel::info, "server", "kick", "kicking slot " + std::to_string(id.slot) + ": " + std::string(reason),
            {{"slot", id.slot}, {"address", PeerLink::describe(peer)}, {"reason", reason}});
  return true;
}

bool ServerRole::redirect(ClientId id, std::string_view url, std::string_view handoff) {
  if (liveness(id) != Liveness::live) return false;
  ENetPeer* peer = slot_entries_[id.slot].peer;
  link(peer).send_control(wire::encode_redirect(wire::Redirect{std::string(url), std::string(handoff)}));
  link(peer).disconnect_later(static_cast<uint32_t>(wire::DisconnectCode::redirected));
  PeerState& st = state_of(peer);
  st.phase = Phase::departing;
  st.since_ns = monotonic_ns();
  st.depart_reason = "redirect";
  sessions_.revoke(id.slot);  // the session moves to the destination; nothing to resume here
  log_write(LogLevel::info, "server", "redirecting slot " + std::to_string(id.slot) + " to " + std::string(url));
  return true;
}

void ServerRole::request_stop(int exit_code) { defer_stop(exit_code); }

void ServerRole::on_script_error() {
  ++metrics_.handler_errors;
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
  stop_cluster();
  if (rooms_) rooms_->shutdown();
  stopping_ = true;
  tick_.stop();
  ENetHost* host = endpoint_->host();
  for (size_t i = 0; i <= host->peerCount; ++i) {
    ENetPeer* peer = i < host->peerCount ? &host->peers[i] : local_ ? local_->peer(LocalLink::Side::server) : nullptr;
    if (!peer || peer->state == ENET_PEER_STATE_DISCONNECTED) continue;
    if (peers_[i].phase == Phase::live)  // a last ack: the client learns exactly what arrived
      link(peer).send_control(wire::encode_ack(slot_entries_[peers_[i].id.slot].replay.received()));
    if (peers_[i].phase == Phase::live || peers_[i].phase == Phase::departing)
      link(peer).disconnect_later(static_cast<uint32_t>(wire::DisconnectCode::shutdown));
    else
      link(peer).disconnect_now(static_cast<uint32_t>(wire::DisconnectCode::shutdown));
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
  return !local_ || local_->peer(LocalLink::Side::server)->state == ENET_PEER_STATE_DISCONNECTED;
}

void ServerRole::finish_now() { finish(); }

void ServerRole::finish() {
  if (finished_) return;
  finished_ = true;
  watcher_.reset();
  admin_.reset();  // stops accepting and ends its connections; freed as the loop runs on
  tick_.stop();
  stop_timer_.close();
  grace_timer_.close();
  ack_timer_.close();
  stop_cluster();
  rooms_.reset();
  endpoint_.reset();
  log_write(LogLevel::info, "server", "stopped");
  if (on_finished) on_finished();
}

}  // namespace nshost
