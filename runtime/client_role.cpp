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
            [this](const TickScheduler::Beat& beat, int64_t now) { on_tick(beat, now); }) {}

ClientRole::~ClientRole() {
  if (resolving_) {
    resolving_->data = nullptr;  // the callback still runs (cancelled) and frees it
    uv_cancel(reinterpret_cast<uv_req_t*>(resolving_));
  }
  tick_.stop();
  timer_.close();
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
  config.peer_count = 1;
  config.channel_count = wire::kChannelCount;
  config.max_message_bytes = options_.max_message_bytes;
  endpoint_ = EnetEndpoint::create(loop_, config, *this, error);
  if (!endpoint_) {
    error = "nshost: " + error;
    return false;
  }
  try {
    script_ = std::make_unique<ScriptHost>(*this, log_tag_);
  } catch (const std::exception& e) {
    error = std::string("nshost: cannot create the Lua state: ") + e.what();
    return false;
  }
  if (!script_->load(options_.script, error)) return false;
  int rc = timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  if (rc == 0) {
    timer_.get()->data = this;
    rc = tick_.start();
  }
  if (rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  exit_code_ = 0;
  defer(kConnectTimeoutMs);
  in_addr literal{};
  if (inet_pton(AF_INET, url_.host.c_str(), &literal) == 1) {
    ENetAddress address{literal.s_addr, url_.port};
    connect_to(address);
    return true;
  }
  phase_ = Phase::resolving;
  resolving_ = new uv_getaddrinfo_t{};
  resolving_->data = this;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  rc = uv_getaddrinfo(
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
    end_connection(std::string("connect_failed: cannot resolve ") + url_.host + ": " + uv_strerror(rc));
  }
  return true;
}

void ClientRole::on_resolved(int status, const addrinfo* result) {
  resolving_ = nullptr;
  if (phase_ != Phase::resolving) return;
  if (status != 0 || !result) {
    end_connection(std::string("connect_failed: cannot resolve ") + url_.host + ": " + uv_strerror(status));
    return;
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(result->ai_addr);
  connect_to(ENetAddress{in->sin_addr.s_addr, url_.port});
}

void ClientRole::connect_to(const ENetAddress& address) {
  peer_ = enet_host_connect(endpoint_->host(), &address, wire::kChannelCount, 0);
  if (!peer_) {
    end_connection("connect_failed: no free ENet peer");
    return;
  }
  phase_ = Phase::connecting;
  endpoint_->mark_dirty();
  log_write(LogLevel::debug, log_tag_, "connecting to " + format_address(address));
}

void ClientRole::on_enet_event(ENetEvent& event) {
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT: {
      if (event.peer != peer_ || phase_ != Phase::connecting) return;
      phase_ = Phase::handshaking;
      wire::Hello hello;
      hello.handoff = handoff_;
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
        if (phase_ != Phase::joined) return;
        const char* channel = event.channelID == wire::kChannelReliable ? "reliable" : "unreliable";
        script_->invoke("receive", [&](lua_State* L) {
          lua_pushlstring(L, bytes.data(), bytes.size());
          lua_pushstring(L, channel);
          return 2;
        });
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
        phase_ = Phase::joined;
        server_max_clients_ = welcome.max_clients;
        uv_timer_stop(timer_.get());
        log_write(LogLevel::info, log_tag_,
                  "joined " + format_address(peer_->address) + " in slot " + std::to_string(welcome.slot));
        if (stop_requested_) defer(0);
        script_->invoke("connect", [&](lua_State* L) {
          lua_pushlstring(L, handoff_.data(), handoff_.size());
          return 1;
        });
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
      if (event.peer != peer_) return;
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

void ClientRole::end_connection(std::string reason) {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  pending_reason_.clear();
  server_max_clients_ = 0;
  log_write(reason == "left" ? LogLevel::info : LogLevel::warn, log_tag_, "disconnected: " + reason);
  script_->invoke("disconnect", [&](lua_State* L) {
    lua_pushstring(L, reason.c_str());
    return 1;
  });
  // The process ends once the script has been told, unless the handler
  // started a new connection.
  if (phase_ == Phase::closed) defer(0);
}

bool ClientRole::send(std::string_view data, Channel channel, std::string& error) {
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
  endpoint_->mark_dirty();
  return true;
}

void ClientRole::on_tick(const TickScheduler::Beat& beat, int64_t now_ns) {
  // The first tick reports one nominal period.
  double dt = last_tick_ns_ == 0 ? 1.0 / tick_.rate_hz() : static_cast<double>(now_ns - last_tick_ns_) / 1e9;
  last_tick_ns_ = now_ns;
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
      if (stop_requested_) {
        begin_shutdown();
        return;
      }
      if (peer_) enet_peer_reset(peer_);
      peer_ = nullptr;
      end_connection("connect_failed");
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
      phase_ = Phase::leaving;
      enet_peer_disconnect(peer_, static_cast<uint32_t>(wire::DisconnectCode::leave));
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
  endpoint_.reset();
  if (on_finished) on_finished();
}

}  // namespace nshost
