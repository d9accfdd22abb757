#include "runtime/roles/client_role.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include "runtime/core/log.hpp"
#include "runtime/roles/local_link.hpp"
#include "runtime/roles/peer_link.hpp"

namespace nshost {

ClientRole::ClientRole(uv_loop_t* loop, Options options, std::string log_tag)
    : loop_(loop),
      options_(std::move(options)),
      log_tag_(std::move(log_tag)),
      tick_(loop, options_.tick_rate_hz,
            [this](const TickScheduler::Beat& beat, int64_t now) { on_tick(beat, now); }),
      cache_(options_.cache_dir.empty() ? BundleCache::default_dir() : options_.cache_dir),
      rooms_(*this, log_tag_) {}

ClientRole::~ClientRole() {
  if (resolving_) {
    resolving_->data = nullptr;  // the callback still runs (cancelled) and frees it
    uv_cancel(reinterpret_cast<uv_req_t*>(resolving_));
  }
  tick_.stop();
  timer_.close();
  ack_timer_.close();
  rooms_.stop();
  endpoint_.reset();
  script_.reset();
}

void ClientRole::use_local_link(LocalLink& link) {
  local_ = &link;
  link.attach(LocalLink::Side::client, *this);
}

bool ClientRole::start(std::string& error) {
  exit_code_ = 2;
  if (!local_ && !parse_shard_url(options_.connect_url, url_, error)) {
    error = "nshost: --connect: " + error;
    return false;
  }
  exit_code_ = 1;
  if (!local_) {  // the local client of a listen server has no socket
    EnetEndpoint::Config config;
    config.peer_count = 2;  // the server, and the origin of a hop while it says goodbye
    config.channel_count = wire::kChannelCount;
    config.max_message_bytes = options_.max_message_bytes;
    config.netsim = options_.netsim;
    config.log_tag = log_tag_;
    endpoint_ = EnetEndpoint::create(loop_, config, *this, error);
    if (!endpoint_) {
      error = "nshost: " + error;
      return false;
    }
  }
  // Before the script loads: its top-level chunk may already call sys.quit().
  if (int rc = timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  timer_.get()->data = this;
  if (int rc = ack_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  ack_timer_.get()->data = this;
  if (!rooms_.start(loop_, error)) {
    error = "nshost: " + error;
    return false;
  }
  if (!options_.script.empty()) {
    try {
      script_ = std::make_unique<ScriptHost>(*this, &open_client_modules, log_tag_, sandbox_limits(options_.sandbox));
    } catch (const std::exception& e) {
      error = std::string("nshost: cannot create the Lua state: ") + e.what();
      return false;
    }
    if (!script_->load(options_.script, error)) return false;
    // Names the local tree, so a hop to a shard serving the same tree keeps this state.
    Bundle local;
    std::string why;
    if (bundle_directory(options_.script, options_.max_bundle_bytes, local, why))
      tree_hash_ = sha256(encode_bundle(local));
    else
      log_write(LogLevel::debug, log_tag_, "local script tree has no bundle hash: " + why);
  }
  if (int rc = tick_.start(); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  exit_code_ = requested_exit_code_;
  defer(stop_requested_ ? 0 : std::max<uint64_t>(kConnectTimeoutMs, options_.limits.link_timeout_ms));
  connect_to_url();
  return true;
}

void ClientRole::connect_to_url() {
  if (local_) {
    connect_to(ENetAddress{});
    return;
  }
  in_addr literal{};
  if (inet_pton(AF_INET, url_.host.c_str(), &literal) == 1) {
    ENetAddress address{literal.s_addr, url_.port};
    connect_to(address);
    return;
  }
  phase_ = Phase::resolving;
  resolving_ = new uv_getaddrinfo_t{};
  resolving_->data = this;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  int rc = uv_getaddrinfo(
      loop_, resolving_,
      [](uv_getaddrinfo_t* req, int status, addrinfo* result) {
        if (req->data) static_cast<ClientRole*>(req->data)->on_resolved(status, result);
        uv_freeaddrinfo(result);
        delete req;
      },
      url_.host.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete resolving_;
    resolving_ = nullptr;
    std::string why = std::string("cannot resolve ") + url_.host + ": " + uv_strerror(rc);
    if (hopping_) fail_soon("unreachable: " + why);
    else end_connection("connect_failed: " + why);
  }
}

void ClientRole::on_resolved(int status, const addrinfo* result) {
  resolving_ = nullptr;
  if (phase_ != Phase::resolving) return;
  if (status != 0 || !result) {
    std::string why = std::string("cannot resolve ") + url_.host + ": " + uv_strerror(status);
    if (hopping_) fail_hop("unreachable: " + why);
    else end_connection("connect_failed: " + why);
    return;
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(result->ai_addr);
  connect_to(ENetAddress{in->sin_addr.s_addr, url_.port});
}

void ClientRole::connect_to(const ENetAddress& address) {
  server_address_ = address;
  pending_reason_.clear();  // a notice belongs to the connection that carried it
  fetch_.clear();           // and so does data it held back
  if (local_) {
    peer_ = local_->connect();
    phase_ = Phase::connecting;
    log_write(LogLevel::debug, log_tag_, "connecting to the listen server in-process");
    return;
  }
  peer_ = enet_host_connect(endpoint_->host(), &address, wire::kChannelCount, 0);
  if (!peer_) {
    if (hopping_) fail_soon("unreachable: no free ENet peer");
    else end_connection("connect_failed: no free ENet peer");
    return;
  }
  enet_peer_timeout(peer_, 0, options_.limits.link_timeout_ms, options_.limits.link_timeout_ms);
  phase_ = Phase::connecting;
  mark_dirty();
  log_write(LogLevel::debug, log_tag_, "connecting to " + format_address(address));
}

void ClientRole::on_enet_event(ENetEvent& event) {
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT:
      if (event.peer == peer_ && phase_ == Phase::connecting) on_link_up();
      break;
    case ENET_EVENT_TYPE_RECEIVE:
      if (event.peer != peer_) return;
      on_receive(event.channelID,
                 std::string_view(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength));
      break;
    case ENET_EVENT_TYPE_DISCONNECT:
      if (event.peer == leaving_peer_) leaving_peer_ = nullptr;
      if (event.peer == peer_) on_link_down(event.data);
      break;
    case ENET_EVENT_TYPE_NONE:
      break;
  }
}

void ClientRole::on_link_up() {
  phase_ = Phase::handshaking;
  log_write(LogLevel::debug, log_tag_, "link up; sending hello");
  wire::Hello hello;
  hello.codecs = options_.codecs;
  hello.project_id = options_.project_id;
  hello.auth_token = options_.auth_token;
  hello.seat_token = seat_token_;
  if (reconnecting_) {  // a resume carries no handoff
    hello.session_token = session_token_;
    hello.received = replay_.received();
    hello.replay_floor = replay_.replay_floor();
  } else {
    hello.handoff = handoff_;
  }
  PeerLink(endpoint_.get(), peer_).send_control(wire::encode_hello(hello));
}

void ClientRole::on_receive(uint8_t channel_id, std::string_view bytes) {
  if (channel_id == wire::kChannelControl) {
    on_control(bytes);
    return;
  }
  if (channel_id == wire::kChannelRoomReliable || channel_id == wire::kChannelRoomUnreliable) {
    // Catalog answers belong to the session that asked: not held, not replayed.
    if (phase_ == Phase::joined) rooms_.on_catalog(channel_id, bytes);
    else log_write(LogLevel::debug, log_tag_, "dropped a rooms message that arrived outside a session");
    return;
  }
  // Before the welcome (ENet orders within a channel, not across them) or
  // while the bundle is fetched: held for the script.
  if (phase_ == Phase::fetching || phase_ == Phase::handshaking) {
    if (!fetch_.hold(channel_id, bytes))
      log_write(LogLevel::warn, log_tag_, "dropped a message that arrived before the script could take it");
    return;
  }
  if (phase_ == Phase::joined) deliver_data(channel_id, bytes);
}

void ClientRole::on_control(std::string_view bytes) {
  auto type = wire::peek_type(bytes);
  if (type == wire::ControlType::welcome && phase_ == Phase::handshaking) {
    on_welcome_message(bytes);
  } else if (type == wire::ControlType::ack && phase_ == Phase::joined) {
    on_ack_message(bytes);
  } else if (type == wire::ControlType::clock && phase_ == Phase::joined) {
    uint64_t tick = 0;
    std::string error;
    if (wire::decode_clock(bytes, tick, error)) server_tick_ = tick;
    else log_write(LogLevel::warn, log_tag_, "malformed clock from server: " + error);
  } else if (type == wire::ControlType::bundle_part && phase_ == Phase::fetching) {
    on_bundle_part(bytes);
  } else if (type == wire::ControlType::redirect && (phase_ == Phase::joined || phase_ == Phase::fetching)) {
    wire::Redirect redirect;
    std::string error;
    if (!wire::decode_redirect(bytes, redirect, error)) {
      log_write(LogLevel::warn, log_tag_, "malformed redirect from server: " + error);
      return;
    }
    log_write(LogLevel::info, log_tag_, "redirected to " + redirect.url);
    pending_redirect_ = std::move(redirect);
  } else if (type == wire::ControlType::reject || type == wire::ControlType::kick) {
    wire::Notice notice;
    std::string error;
    if (!wire::decode_notice(bytes, notice, error)) {
      log_write(LogLevel::warn, log_tag_, "malformed notice from server: " + error);
      return;
    }
    pending_reason_ = (notice.type == wire::ControlType::reject ? "rejected: " : "kicked: ") + notice.reason;
    log_write(LogLevel::warn, log_tag_, "server says " + pending_reason_);
  } else {
    log_write(LogLevel::debug, log_tag_, "ignored unexpected control message");
  }
}

void ClientRole::on_welcome_message(std::string_view bytes) {
  wire::Welcome welcome;
  std::string error;
  if (!wire::decode_welcome(bytes, welcome, error)) {
    log_write(LogLevel::warn, log_tag_, "malformed welcome from server: " + error);
    return;
  }
  server_max_clients_ = welcome.max_clients;
  server_tick_rate_hz_ = welcome.tick_rate_hz;
  server_tick_ = welcome.server_tick;
  session_token_ = welcome.session_token;
  uv_timer_stop(timer_.get());
  if (reconnecting_) {
    on_reconnect_welcome(welcome);
    return;
  }
  log_write(LogLevel::info, log_tag_,
            "joined " + PeerLink::describe(peer_) + " in slot " + std::to_string(welcome.slot));
  on_welcome(welcome);
}

void ClientRole::on_ack_message(std::string_view bytes) {
  uint64_t count = 0;
  std::string error;
  if (!wire::decode_ack(bytes, count, error))
    log_write(LogLevel::warn, log_tag_, "malformed ack from server: " + error);
  else if (!replay_.acknowledge(count))
    log_write(LogLevel::warn, log_tag_,
              "ignored ack from server: " + std::to_string(count) + " received, but only " +
                  std::to_string(replay_.numbered()) + " sent");
}

// The link to the server is gone: follow a redirect, fail a hop, retry a
// reconnect, start one, or end the connection; in that order.
void ClientRole::on_link_down(uint32_t disconnect_code) {
  peer_ = nullptr;
  if (pending_redirect_ && (phase_ == Phase::joined || phase_ == Phase::fetching)) {
    wire::Redirect redirect = std::move(*pending_redirect_);
    pending_redirect_.reset();
    session_token_.clear();  // the session moves with the hop
    rooms_.end_session(true);
    start_hop(redirect.url, std::move(redirect.handoff));
    return;
  }
  if (hopping_ && phase_ != Phase::leaving) {
    fail_hop(!pending_reason_.empty() ? pending_reason_
             : phase_ == Phase::connecting
                 ? "unreachable: " + url_.host + ":" + std::to_string(url_.port) + " refused the connection"
                 : "server_left");
    return;
  }
  if (reconnecting_ && (phase_ == Phase::connecting || phase_ == Phase::handshaking)) {
    on_attempt_refused();
    return;
  }
  if (phase_ == Phase::joined && should_resume(disconnect_code)) {
    start_reconnect();
    return;
  }
  end_connection(!pending_reason_.empty()       ? pending_reason_
                 : phase_ == Phase::connecting ? "connect_failed"
                 : phase_ == Phase::leaving    ? "left"
                                               : "server_left");
}

void ClientRole::end_connection(std::string reason) {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  pending_reason_.clear();
  server_max_clients_ = 0;
  server_tick_rate_hz_ = 0;
  hopping_ = false;
  transferring_ = false;
  seat_token_.clear();
  pending_redirect_.reset();
  fetch_.clear();
  size_t undelivered = replay_.held_count();
  replay_ = ReliableReplay(0);
  log_write(reason == "left" ? LogLevel::info : LogLevel::warn, log_tag_,
            "disconnected: " + reason +
                (undelivered ? " (" + std::to_string(undelivered) + " reliable message(s) not acknowledged)" : ""));
  // The rooms learn it before client.disconnect runs.
  rooms_.end_session(true);
  if (!script_) {
    if (reason != "left") {
      log_write(LogLevel::error, log_tag_, "no script to run: " + reason);
      exit_code_ = std::max(exit_code_, 1);
    }
    defer(0);
    return;
  }
  // A failed hop leaves the client running on its current state, which may
  // hop again (from this handler or a later tick) or quit.
  bool stay = reason.rfind("hop_failed", 0) == 0 && !stop_requested_;
  if (stay) uv_timer_stop(timer_.get());
  script_->invoke("disconnect", [&](lua_State* L) {
    lua_pushstring(L, reason.c_str());
    lua_pushinteger(L, static_cast<lua_Integer>(undelivered));
    return 2;
  });
  // Otherwise the process ends once the script has been told, unless the
  // handler started a new connection.
  if (phase_ == Phase::closed && !stay) defer(0);
}

bool ClientRole::send(std::string_view data, Channel channel, std::string& error) {
  if (phase_ != Phase::joined && reconnecting_ && channel == Channel::reliable) {
    // The link is down: queued for the replay once the session resumes.
    if (replay_.queue(std::make_shared<const std::string>(data))) return true;
    error = "ENOBUFS: the resume buffer is full (" + std::to_string(replay_.held_bytes()) + " of " +
            std::to_string(replay_.budget_bytes()) + " bytes; --resume-buffer-size)";
    return false;
  }
  if (phase_ != Phase::joined) {
    error = "ENOTCONN: not connected";
    return false;
  }
  if (!PeerLink(endpoint_.get(), peer_).send(data, channel)) {
    error = "ENOBUFS: ENet refused the packet";
    return false;
  }
  if (channel == Channel::reliable) replay_.retain_sent(std::make_shared<const std::string>(data));
  return true;
}

bool ClientRole::send_catalog(std::string_view bytes, bool reliable) {
  if (phase_ != Phase::joined || !peer_) return false;
  ENetPacket* packet = enet_packet_create(bytes.data(), bytes.size(),
                                          reliable ? ENET_PACKET_FLAG_RELIABLE : ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT);
  if (!packet) return false;
  uint8_t channel_id = reliable ? wire::kChannelRoomReliable : wire::kChannelRoomUnreliable;
  if (!PeerLink(endpoint_.get(), peer_).queue_on(packet, channel_id)) {
    enet_packet_destroy(packet);
    return false;
  }
  mark_dirty();
  return true;
}

void ClientRole::send_ack() {
  if (phase_ != Phase::joined || !peer_) return;
  if (replay_.take_ack_due(monotonic_ns()))
    PeerLink(endpoint_.get(), peer_).send_control(wire::encode_ack(replay_.received()));
  schedule_ack();
}

void ClientRole::schedule_ack() {
  if (!ack_timer_ || uv_is_active(reinterpret_cast<uv_handle_t*>(ack_timer_.get()))) return;
  int64_t wait_ns = replay_.ack_wait_ns(monotonic_ns());
  if (wait_ns < 0) return;
  uv_timer_start(
      ack_timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<ClientRole*>(t->data)->send_ack();
      },
      static_cast<uint64_t>((wait_ns + 999'999) / 1'000'000), 0);
}

void ClientRole::on_tick(const TickScheduler::Beat& beat, int64_t now_ns) {
  // The first tick reports one nominal period.
  double dt = last_tick_ns_ == 0 ? 1.0 / tick_.rate_hz() : static_cast<double>(now_ns - last_tick_ns_) / 1e9;
  last_tick_ns_ = now_ns;
  if (!script_) return;
  script_->invoke("tick", [&](lua_State* L) {
    lua_pushinteger(L, static_cast<lua_Integer>(beat.tick_num));
    lua_pushnumber(L, dt);
    return 2;
  });
}

void ClientRole::defer(uint64_t ms) {
  if (timer_)
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          if (t->data) static_cast<ClientRole*>(t->data)->on_timer();
        },
        ms, 0);
}

// The one timer: what it means depends on the phase.
void ClientRole::on_timer() {
  if (stop_requested_ && phase_ != Phase::leaving && phase_ != Phase::closed) {
    begin_shutdown();
    return;
  }
  switch (phase_) {
    case Phase::idle:
    case Phase::resolving:
    case Phase::connecting:
    case Phase::handshaking:
      on_connect_timeout();
      return;
    case Phase::fetching:
      fail_hop("fetch_timeout: the bundle did not arrive within " + std::to_string(kFetchTimeoutMs) + " ms");
      return;
    case Phase::failing:
      fail_hop(std::move(pending_failure_));
      return;
    case Phase::reconnecting:
      attempt_reconnect();
      return;
    case Phase::joined:
      return;
    case Phase::leaving:
      drop_peer();
      end_connection("left");
      return;
    case Phase::closed:
      finish();
      return;
  }
}

void ClientRole::on_connect_timeout() {
  drop_peer();
  if (reconnecting_)
    schedule_attempt();
  else if (hopping_)
    fail_hop("unreachable: no answer from " + url_.host + ":" + std::to_string(url_.port) + " within " +
             std::to_string(kConnectTimeoutMs) + " ms");
  else
    end_connection("connect_failed");
}

void ClientRole::drop_peer() {
  if (peer_) PeerLink(endpoint_.get(), peer_).reset();
  peer_ = nullptr;
}

void ClientRole::request_stop(int exit_code) {
  requested_exit_code_ = std::max(requested_exit_code_, exit_code);
  exit_code_ = std::max(exit_code_, exit_code);
  stop_requested_ = true;
  defer(0);
}

void ClientRole::on_script_error() {
  if (options_.strict && !stop_requested_) {
    log_write(LogLevel::error, log_tag_, "--strict: stopping after a script error");
    request_stop(1);
  }
}

void ClientRole::begin_shutdown() {
  if (finished_) return;
  stop_requested_ = true;
  switch (phase_) {
    case Phase::joined:
    case Phase::handshaking:
    case Phase::fetching:
      if (phase_ == Phase::joined) {
        // A last ack, so the server knows exactly what arrived. The
        // disconnect waits for what is queued (this ack, the script's last
        // sends): ENet drops what a peer still holds when the disconnect
        // reaches it. kLeaveGraceMs bounds the wait.
        PeerLink(endpoint_.get(), peer_).send_control(wire::encode_ack(replay_.received()));
        PeerLink(endpoint_.get(), peer_).disconnect_later(static_cast<uint32_t>(wire::DisconnectCode::leave));
      } else {
        PeerLink(endpoint_.get(), peer_).disconnect(static_cast<uint32_t>(wire::DisconnectCode::leave));
      }
      phase_ = Phase::leaving;
      if (endpoint_) endpoint_->flush();
      defer(kLeaveGraceMs);
      return;
    case Phase::leaving:  // a second signal: do not wait for the server
      drop_peer();
      finish();
      return;
    default:
      drop_peer();
      phase_ = Phase::closed;
      finish();
      return;
  }
}

void ClientRole::finish() {
  if (finished_) return;
  // Requests made while never joined still get their one callback.
  rooms_.end_session(true);
  finished_ = true;
  tick_.stop();
  rooms_.stop();
  timer_.close();
  ack_timer_.close();
  endpoint_.reset();
  if (on_finished) on_finished();
}

ScriptHost::Sandbox ClientRole::sandbox_limits(bool enabled) const {
  ScriptHost::Sandbox sandbox;
  sandbox.enabled = enabled;
  sandbox.memory_limit_bytes = options_.memory_limit_bytes;
  sandbox.instruction_budget = options_.instruction_budget;
  sandbox.handler_timeout_ms = options_.handler_timeout_ms;
  sandbox.allow_net = options_.allow_net;
  return sandbox;
}

}  // namespace nshost
