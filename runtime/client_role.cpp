#include "runtime/client_role.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include "runtime/log.hpp"

namespace nshost {

ClientRole::ClientRole(uv_loop_t* loop, Options options, std::string log_tag)
    : loop_(loop),
      options_(std::move(options)),
      log_tag_(std::move(log_tag)),
      tick_(loop, options_.tick_rate_hz,
            [this](const TickScheduler::Beat& beat, int64_t now) { on_tick(beat, now); }),
      cache_(options_.cache_dir.empty() ? BundleCache::default_dir() : options_.cache_dir) {}

ClientRole::~ClientRole() {
  if (resolving_) {
    resolving_->data = nullptr;  // the callback still runs (cancelled) and frees it
    uv_cancel(reinterpret_cast<uv_req_t*>(resolving_));
  }
  tick_.stop();
  timer_.close();
  ack_timer_.close();
  endpoint_.reset();
  script_.reset();
}

bool ClientRole::start(std::string& error) {
  exit_code_ = 2;
  if (!parse_shard_url(options_.connect_url, url_, error)) {
    error = "nshost: --connect: " + error;
    return false;
  }
  exit_code_ = 1;
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
  held_data_.clear();       // and so does data it held back
  held_bytes_ = 0;
  peer_ = enet_host_connect(endpoint_->host(), &address, wire::kChannelCount, 0);
  if (!peer_) {
    if (hopping_) fail_soon("unreachable: no free ENet peer");
    else end_connection("connect_failed: no free ENet peer");
    return;
  }
  enet_peer_timeout(peer_, 0, options_.limits.link_timeout_ms, options_.limits.link_timeout_ms);
  phase_ = Phase::connecting;
  endpoint_->mark_dirty();
  log_write(LogLevel::debug, log_tag_, "connecting to " + format_address(address));
}

void ClientRole::on_enet_event(ENetEvent& event) {
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT: {
      if (event.peer != peer_ || phase_ != Phase::connecting) return;
      phase_ = Phase::handshaking;
      log_write(LogLevel::debug, log_tag_, "link up; sending hello");
      wire::Hello hello;
      if (reconnecting_) {  // a resume carries no handoff
        hello.session_token = session_token_;
        hello.received = replay_.received();
        hello.replay_floor = replay_.replay_floor();
      } else {
        hello.handoff = handoff_;
      }
      std::string bytes = wire::encode_hello(hello);
      enet_peer_send(peer_, wire::kChannelControl,
                     enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
      endpoint_->mark_dirty();
      break;
    }
    case ENET_EVENT_TYPE_RECEIVE: {
      if (event.peer != peer_) return;
      std::string_view bytes(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength);
      if (event.channelID != wire::kChannelControl) {
        // Before the welcome (ENet orders within a channel, not across
        // them) or while the bundle is fetched: held for the script.
        if (phase_ == Phase::fetching || phase_ == Phase::handshaking) {
          if (held_bytes_ + bytes.size() > kMaxHeldBytes) {
            log_write(LogLevel::warn, log_tag_, "dropped a message that arrived before the script could take it");
            return;
          }
          held_bytes_ += bytes.size();
          held_data_.emplace_back(event.channelID, std::string(bytes));
          return;
        }
        if (phase_ != Phase::joined) return;
        deliver_data(event.channelID, bytes);
        return;
      }
      std::string error;
      auto type = wire::peek_type(bytes);
      if (type == wire::ControlType::welcome && phase_ == Phase::handshaking) {
        wire::Welcome welcome;
        if (!wire::decode_welcome(bytes, welcome, error)) {
          log_write(LogLevel::warn, log_tag_, "malformed welcome from server: " + error);
          return;
        }
        server_max_clients_ = welcome.max_clients;
        session_token_ = welcome.session_token;
        uv_timer_stop(timer_.get());
        if (reconnecting_) {
          on_reconnect_welcome(welcome);
          return;
        }
        log_write(LogLevel::info, log_tag_,
                  "joined " + format_address(peer_->address) + " in slot " + std::to_string(welcome.slot));
        on_welcome(welcome);
      } else if (type == wire::ControlType::ack && phase_ == Phase::joined) {
        uint64_t count = 0;
        if (!wire::decode_ack(bytes, count, error))
          log_write(LogLevel::warn, log_tag_, "malformed ack from server: " + error);
        else if (!replay_.acknowledge(count))
          log_write(LogLevel::warn, log_tag_,
                    "ignored ack from server: " + std::to_string(count) + " received, but only " +
                        std::to_string(replay_.numbered()) + " sent");
      } else if (type == wire::ControlType::bundle_part && phase_ == Phase::fetching) {
        on_bundle_part(bytes);
      } else if (type == wire::ControlType::redirect && (phase_ == Phase::joined || phase_ == Phase::fetching)) {
        wire::Redirect redirect;
        if (!wire::decode_redirect(bytes, redirect, error)) {
          log_write(LogLevel::warn, log_tag_, "malformed redirect from server: " + error);
          return;
        }
        log_write(LogLevel::info, log_tag_, "redirected to " + redirect.url);
        pending_redirect_ = std::move(redirect);
      } else if (type == wire::ControlType::reject || type == wire::ControlType::kick) {
        wire::Notice notice;
        if (!wire::decode_notice(bytes, notice, error)) {
          log_write(LogLevel::warn, log_tag_, "malformed notice from server: " + error);
          return;
        }
        pending_reason_ = (notice.type == wire::ControlType::reject ? "rejected: " : "kicked: ") + notice.reason;
        log_write(LogLevel::warn, log_tag_, "server says " + pending_reason_);
      } else {
        log_write(LogLevel::debug, log_tag_, "ignored unexpected control message");
      }
      break;
    }
    case ENET_EVENT_TYPE_DISCONNECT: {
      if (event.peer == leaving_peer_) leaving_peer_ = nullptr;
      if (event.peer != peer_) return;
      if (pending_redirect_ && (phase_ == Phase::joined || phase_ == Phase::fetching)) {
        wire::Redirect redirect = std::move(*pending_redirect_);
        pending_redirect_.reset();
        peer_ = nullptr;
        session_token_.clear();  // the session moves with the hop
        start_hop(redirect.url, std::move(redirect.handoff));
        return;
      }
      if (hopping_ && phase_ != Phase::leaving) {
        std::string why = !pending_reason_.empty() ? pending_reason_
                          : phase_ == Phase::connecting
                              ? "unreachable: " + url_.host + ":" + std::to_string(url_.port) + " refused the connection"
                              : "server_left";
        peer_ = nullptr;
        fail_hop(why);
        return;
      }
      if (reconnecting_ && (phase_ == Phase::connecting || phase_ == Phase::handshaking)) {
        peer_ = nullptr;
        // Refused while the server still holds the old link: try again later.
        bool retry = pending_reason_.empty() || pending_reason_ == "rejected: session_in_use";
        if (retry) {
          pending_reason_.clear();
          schedule_attempt();
          return;
        }
        reconnecting_ = false;
        end_connection(pending_reason_);
        return;
      }
      if (phase_ == Phase::joined && should_resume(event.data)) {
        peer_ = nullptr;
        start_reconnect();
        return;
      }
      std::string reason = !pending_reason_.empty()       ? pending_reason_
                           : phase_ == Phase::connecting ? "connect_failed"
                           : phase_ == Phase::leaving    ? "left"
                                                         : "server_left";
      peer_ = nullptr;
      end_connection(reason);
      break;
    }
    case ENET_EVENT_TYPE_NONE:
      break;
  }
}

void ClientRole::on_reconnect_welcome(const wire::Welcome& welcome) {
  reconnecting_ = false;
  if (welcome.resumed) {
    phase_ = Phase::joined;
    if (stop_requested_) defer(0);
    // The server checked our replay floor; a count we cannot replay from
    // means a server that does not follow the protocol.
    if (!replay_.acknowledge(welcome.received) || !replay_.can_replay_from(welcome.received))
      log_write(LogLevel::warn, log_tag_,
                "the server says it has " + std::to_string(welcome.received) + " of our " +
                    std::to_string(replay_.numbered()) + " reliable messages; cannot replay from there");
    size_t replayed = 0;
    replay_.for_each_after(welcome.received, [&](const ReliableReplay::Payload& bytes) {
      ENetPacket* packet = enet_packet_create(bytes->data(), bytes->size(), ENET_PACKET_FLAG_RELIABLE);
      if (packet && enet_peer_send(peer_, wire::kChannelReliable, packet) == 0) ++replayed;
      else if (packet) enet_packet_destroy(packet);
    });
    endpoint_->mark_dirty();
    log_write(LogLevel::info, log_tag_,
              "resumed the session in slot " + std::to_string(welcome.slot) + " after " +
                  std::to_string(reconnect_attempt_) + " attempt(s); replayed " + std::to_string(replayed) +
                  " reliable message(s)");
    script_->invoke("resumed");
    deliver_held();
    return;
  }
  // The server no longer knew the token: this is a fresh join, with no handoff.
  handoff_.clear();
  undelivered_before_join_ = replay_.held_count();
  log_write(LogLevel::info, log_tag_,
            "the server did not know our session; rejoined fresh in slot " + std::to_string(welcome.slot) +
                (undelivered_before_join_ ? " (" + std::to_string(undelivered_before_join_) +
                                                " reliable message(s) of the old session not delivered)"
                                          : ""));
  on_welcome(welcome);
}

bool ClientRole::should_resume(uint32_t disconnect_code) const {
  // A clean leave, a kick, a refusal or a server shutdown ends the session;
  // only a link that dropped (ENet timeout, code 0) is resumed.
  return disconnect_code == static_cast<uint32_t>(wire::DisconnectCode::none) && pending_reason_.empty() &&
         !session_token_.empty() && options_.reconnect.attempts > 0 && !stop_requested_;
}

void ClientRole::start_reconnect() {
  reconnecting_ = true;
  reconnect_attempt_ = 0;
  reconnect_started_ns_ = monotonic_ns();
  log_write(LogLevel::warn, log_tag_, "lost the link to the server; reconnecting");
  phase_ = Phase::reconnecting;
  schedule_attempt();
  script_->invoke("lost");
}

void ClientRole::schedule_attempt() {
  const ReconnectPolicy& policy = options_.reconnect;
  int64_t elapsed_ms = (monotonic_ns() - reconnect_started_ns_) / 1'000'000;
  uint32_t delay = policy.delay_ms(reconnect_attempt_);
  if (reconnect_attempt_ >= policy.attempts || elapsed_ms + delay >= policy.total_ms) {
    log_write(LogLevel::warn, log_tag_,
              "gave up reconnecting after " + std::to_string(reconnect_attempt_) + " attempt(s) in " +
                  std::to_string(elapsed_ms) + " ms");
    reconnecting_ = false;
    end_connection("lost");
    return;
  }
  phase_ = Phase::reconnecting;
  defer(delay);
}

void ClientRole::attempt_reconnect() {
  ++reconnect_attempt_;
  log_write(LogLevel::info, log_tag_, "reconnect attempt " + std::to_string(reconnect_attempt_));
  connect_to(server_address_);
  if (phase_ != Phase::connecting) return;
  // The ENet connect gives up after --link-timeout; this is the backstop.
  int64_t left_ms = options_.reconnect.total_ms - (monotonic_ns() - reconnect_started_ns_) / 1'000'000;
  defer(static_cast<uint64_t>(std::max<int64_t>(0, std::min<int64_t>(left_ms, options_.limits.link_timeout_ms + 500))));
}

void ClientRole::end_connection(std::string reason) {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  pending_reason_.clear();
  server_max_clients_ = 0;
  hopping_ = false;
  pending_redirect_.reset();
  fetch_bytes_.clear();
  held_data_.clear();
  held_bytes_ = 0;
  size_t undelivered = replay_.held_count();
  replay_ = ReliableReplay(0);
  log_write(reason == "left" ? LogLevel::info : LogLevel::warn, log_tag_,
            "disconnected: " + reason +
                (undelivered ? " (" + std::to_string(undelivered) + " reliable message(s) not acknowledged)" : ""));
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
  uint32_t flags = channel == Channel::reliable ? ENET_PACKET_FLAG_RELIABLE : ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT;
  ENetPacket* packet = enet_packet_create(data.data(), data.size(), flags);
  uint8_t id = channel == Channel::reliable ? wire::kChannelReliable : wire::kChannelUnreliable;
  if (!packet || enet_peer_send(peer_, id, packet) != 0) {
    if (packet) enet_packet_destroy(packet);
    error = "ENOBUFS: ENet refused the packet";
    return false;
  }
  if (channel == Channel::reliable) replay_.retain_sent(std::make_shared<const std::string>(data));
  endpoint_->mark_dirty();
  return true;
}

void ClientRole::send_ack() {
  if (phase_ != Phase::joined || !peer_) return;
  if (replay_.take_ack_due(monotonic_ns())) {
    std::string bytes = wire::encode_ack(replay_.received());
    enet_peer_send(peer_, wire::kChannelControl,
                   enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
    endpoint_->mark_dirty();
  }
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

void ClientRole::on_timer() {
  switch (phase_) {
    case Phase::idle:
    case Phase::resolving:
    case Phase::connecting:
    case Phase::handshaking:
    case Phase::fetching:
    case Phase::failing:
      if (stop_requested_) {
        begin_shutdown();
        return;
      }
      if (phase_ == Phase::failing) {
        fail_hop(std::move(pending_failure_));
        return;
      }
      if (phase_ == Phase::fetching) {
        fail_hop("fetch_timeout: the bundle did not arrive within " + std::to_string(kFetchTimeoutMs) + " ms");
        return;
      }
      if (peer_) enet_peer_reset(peer_);
      peer_ = nullptr;
      if (reconnecting_) {
        schedule_attempt();
        return;
      }
      if (hopping_)
        fail_hop("unreachable: no answer from " + url_.host + ":" + std::to_string(url_.port) + " within " +
                 std::to_string(kConnectTimeoutMs) + " ms");
      else
        end_connection("connect_failed");
      return;
    case Phase::reconnecting:
      if (stop_requested_) {
        begin_shutdown();
        return;
      }
      attempt_reconnect();
      return;
    case Phase::joined:
      if (stop_requested_) begin_shutdown();
      return;
    case Phase::leaving:
      if (peer_) enet_peer_reset(peer_);
      peer_ = nullptr;
      end_connection("left");
      return;
    case Phase::closed:
      finish();
      return;
  }
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
        std::string ack = wire::encode_ack(replay_.received());
        enet_peer_send(peer_, wire::kChannelControl,
                       enet_packet_create(ack.data(), ack.size(), ENET_PACKET_FLAG_RELIABLE));
        enet_peer_disconnect_later(peer_, static_cast<uint32_t>(wire::DisconnectCode::leave));
      } else {
        enet_peer_disconnect(peer_, static_cast<uint32_t>(wire::DisconnectCode::leave));
      }
      phase_ = Phase::leaving;
      endpoint_->flush();
      defer(kLeaveGraceMs);
      return;
    case Phase::leaving:  // a second signal: do not wait for the server
      if (peer_) enet_peer_reset(peer_);
      peer_ = nullptr;
      finish();
      return;
    default:
      if (peer_) enet_peer_reset(peer_);
      peer_ = nullptr;
      phase_ = Phase::closed;
      finish();
      return;
  }
}

void ClientRole::finish() {
  if (finished_) return;
  finished_ = true;
  tick_.stop();
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

bool ClientRole::hop(std::string_view url, std::string_view handoff, std::string& error) {
  if (stop_requested_ || finished_) {
    error = "ESHUTDOWN: the client is stopping";
    return false;
  }
  if (phase_ == Phase::joined) {
    // The origin sees server.disconnect(c, "hop") once it hears this.
    if (leaving_peer_) enet_peer_reset(leaving_peer_);
    leaving_peer_ = peer_;
    peer_ = nullptr;
    enet_peer_disconnect(leaving_peer_, static_cast<uint32_t>(wire::DisconnectCode::hop));
    endpoint_->mark_dirty();
    pending_redirect_.reset();
  } else if (phase_ != Phase::closed) {
    error = "EBUSY: a connection attempt is already under way";
    return false;
  }
  start_hop(std::string(url), std::string(handoff));
  return true;
}

// Never calls into Lua: hop() runs inside a handler.
void ClientRole::start_hop(const std::string& url, std::string handoff) {
  hopping_ = true;
  fetch_bytes_.clear();
  held_data_.clear();
  held_bytes_ = 0;
  handoff_ = std::move(handoff);
  pending_reason_.clear();
  server_max_clients_ = 0;
  std::string error;
  log_write(LogLevel::info, log_tag_, "hopping to " + url);
  if (!parse_shard_url(url, url_, error)) {
    fail_soon("bad_url: " + error);
    return;
  }
  if (handoff_.size() > wire::kMaxHandoffBytes) {
    fail_soon("handoff_too_large (" + std::to_string(handoff_.size()) + " bytes, limit " +
              std::to_string(wire::kMaxHandoffBytes) + ")");
    return;
  }
  phase_ = Phase::idle;
  defer(kConnectTimeoutMs);
  connect_to_url();
}

void ClientRole::fail_soon(std::string why) {
  phase_ = Phase::failing;
  pending_failure_ = std::move(why);
  defer(0);
}

void ClientRole::fail_hop(std::string why) {
  if (peer_) {
    // Joined the destination but cannot run its script: leave it cleanly.
    if (phase_ == Phase::fetching || phase_ == Phase::handshaking) {
      if (leaving_peer_) enet_peer_reset(leaving_peer_);
      leaving_peer_ = peer_;
      enet_peer_disconnect(peer_, static_cast<uint32_t>(wire::DisconnectCode::leave));
      endpoint_->mark_dirty();
    } else {
      enet_peer_reset(peer_);
    }
    peer_ = nullptr;
  }
  end_connection((hopping_ || script_ ? "hop_failed: " : "fetch_failed: ") + why);
}

void ClientRole::on_welcome(const wire::Welcome& welcome) {
  replay_ = ReliableReplay(options_.resume_buffer_bytes);  // a new session
  // A local script keeps running on its first server; a hop keeps the state
  // only when the destination serves the very tree this state runs.
  bool same_tree = !welcome.script_hash.empty() && welcome.script_hash == tree_hash_;
  if (script_ && (!hopping_ || same_tree)) {
    complete_join();
    return;
  }
  if (welcome.script_hash.empty()) {
    fail_hop("no_bundle: the destination serves no script bundle");
    return;
  }
  if (welcome.bundle_bytes > options_.max_bundle_bytes) {
    fail_hop("bundle_too_large (" + std::to_string(welcome.bundle_bytes) + " bytes, limit " +
             std::to_string(options_.max_bundle_bytes) + ")");
    return;
  }
  fetch_hash_ = welcome.script_hash;
  fetch_size_ = welcome.bundle_bytes;
  fetch_bytes_.clear();
  std::string cached;
  if (cache_.load(fetch_hash_, cached)) {
    log_write(LogLevel::info, log_tag_, "script bundle " + to_hex(fetch_hash_) + " from the cache");
    adopt_bundle(cached);
    return;
  }
  phase_ = Phase::fetching;
  fetch_bytes_.reserve(fetch_size_);
  std::string request = wire::encode_bundle_request();
  enet_peer_send(peer_, wire::kChannelControl,
                 enet_packet_create(request.data(), request.size(), ENET_PACKET_FLAG_RELIABLE));
  endpoint_->mark_dirty();
  defer(kFetchTimeoutMs);
  log_write(LogLevel::info, log_tag_,
            "fetching script bundle " + to_hex(fetch_hash_) + " (" + std::to_string(fetch_size_) + " bytes)");
}

void ClientRole::on_bundle_part(std::string_view bytes) {
  wire::BundlePart part;
  std::string error;
  if (!wire::decode_bundle_part(bytes, part, error)) {
    fail_hop("bad_bundle: " + error);
    return;
  }
  if (part.offset != fetch_bytes_.size()) {
    fail_hop("bad_bundle: part at offset " + std::to_string(part.offset) + ", expected " +
             std::to_string(fetch_bytes_.size()));
    return;
  }
  if (part.bytes.size() > fetch_size_ - fetch_bytes_.size()) {
    fail_hop("bundle_too_large (more bytes than the " + std::to_string(fetch_size_) + " announced)");
    return;
  }
  fetch_bytes_.append(part.bytes);
  if (fetch_bytes_.size() < fetch_size_) return;
  uv_timer_stop(timer_.get());
  if (sha256(fetch_bytes_) != fetch_hash_) {
    fail_hop("bad_hash: the bundle's SHA-256 is " + to_hex(sha256(fetch_bytes_)) + ", announced " +
             to_hex(fetch_hash_));
    return;
  }
  std::string bytes_owned = std::move(fetch_bytes_);
  fetch_bytes_.clear();
  if (!cache_.store(fetch_hash_, bytes_owned, error))
    log_write(LogLevel::warn, log_tag_, "bundle not cached: " + error);
  adopt_bundle(bytes_owned);
}

void ClientRole::adopt_bundle(const std::string& bytes) {
  auto bundle = std::make_shared<Bundle>();
  std::string error;
  if (!decode_bundle(bytes, *bundle, error)) {
    fail_hop("bad_bundle: " + error);
    return;
  }
  std::unique_ptr<ScriptHost> fresh;
  try {
    fresh = std::make_unique<ScriptHost>(*this, &open_client_modules, log_tag_, sandbox_limits(true));
  } catch (const std::exception& e) {
    fail_hop(std::string("script_error: cannot create the Lua state: ") + e.what());
    return;
  }
  size_t files = bundle->files.size();
  if (!fresh->load_bundle(std::move(bundle), error)) {
    fail_hop("script_error: " + error);
    return;
  }
  log_write(LogLevel::info, log_tag_,
            "running fetched bundle " + to_hex(fetch_hash_) + " (" + std::to_string(files) + " files, sandboxed)");
  script_ = std::move(fresh);
  tree_hash_ = fetch_hash_;
  complete_join();
}

void ClientRole::complete_join() {
  phase_ = Phase::joined;
  hopping_ = false;
  if (stop_requested_) defer(0);
  size_t undelivered = undelivered_before_join_;
  undelivered_before_join_ = 0;
  script_->invoke("connect", [&](lua_State* L) {
    lua_pushlstring(L, handoff_.data(), handoff_.size());
    lua_pushinteger(L, static_cast<lua_Integer>(undelivered));
    return 2;
  });
  deliver_held();
}

void ClientRole::deliver_held() {
  auto held = std::move(held_data_);
  held_data_.clear();
  held_bytes_ = 0;
  for (auto& [channel_id, bytes] : held) {
    if (phase_ != Phase::joined) break;
    deliver_data(channel_id, bytes);
  }
}

void ClientRole::deliver_data(uint8_t channel_id, std::string_view bytes) {
  const char* channel = channel_id == wire::kChannelReliable ? "reliable" : "unreliable";
  if (channel_id == wire::kChannelReliable) {
    replay_.on_received();
    schedule_ack();
  }
  script_->invoke("receive", [&](lua_State* L) {
    lua_pushlstring(L, bytes.data(), bytes.size());
    lua_pushstring(L, channel);
    return 2;
  });
}

}  // namespace nshost
