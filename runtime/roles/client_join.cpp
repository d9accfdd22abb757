// The client's way from a welcome to a running script (docs/shards.md): a
// local script keeps running on its first server and on a hop to a shard
// serving the same tree; otherwise the destination's bundle comes from the
// cache or is fetched (JoinFetch holds it and the data that arrives
// meanwhile), is checked, and runs in a fresh sandboxed state. Then
// client.connect, then the held messages in order. A hop that fails on the
// way is "hop_failed: <why>" and the client keeps its current state.
#include "runtime/roles/client_role.hpp"
#include "runtime/core/log.hpp"
#include "runtime/roles/peer_link.hpp"

namespace nshost {

bool ClientRole::hop(std::string_view url, std::string_view handoff, std::string& error) {
  if (stop_requested_ || finished_) {
    error = "ESHUTDOWN: the client is stopping";
    return false;
  }
  if (local_) {
    error = "ENOTSUP: a listen server's local client cannot hop";
    return false;
  }
  if (phase_ == Phase::joined) {
    // The origin sees server.disconnect(c, "hop") once it hears this.
    if (leaving_peer_) PeerLink(endpoint_.get(), leaving_peer_).reset();
    leaving_peer_ = peer_;
    peer_ = nullptr;
    PeerLink(endpoint_.get(), leaving_peer_).disconnect(static_cast<uint32_t>(wire::DisconnectCode::hop));
    mark_dirty();
    pending_redirect_.reset();
    rooms_.end_session(false);  // inside a Lua call: delivered from the loop
  } else if (phase_ != Phase::closed) {
    error = "EBUSY: a connection attempt is already under way";
    return false;
  }
  start_hop(std::string(url), std::string(handoff));
  return true;
}

void ClientRole::rooms_transfer(std::string url, std::string token) {
  if (phase_ != Phase::joined || local_ || stop_requested_) {
    // Not in a state to move (a listen server's local client has no ENet host).
    rooms_.end_session(false);
    return;
  }
  if (leaving_peer_) PeerLink(endpoint_.get(), leaving_peer_).reset();
  leaving_peer_ = peer_;
  peer_ = nullptr;
  PeerLink(endpoint_.get(), leaving_peer_).disconnect(static_cast<uint32_t>(wire::DisconnectCode::hop));
  mark_dirty();
  pending_redirect_.reset();
  rooms_.end_session(false, "transferred", true);
  transferring_ = true;
  seat_token_ = std::move(token);
  start_hop(url, "");
}

// Never calls into Lua: hop() runs inside a handler.
void ClientRole::start_hop(const std::string& url, std::string handoff) {
  hopping_ = true;
  if (local_) {  // a redirect: the local client has no ENet host to dial another shard with
    fail_soon("unsupported: a listen server's local client cannot leave it for " + url);
    return;
  }
  fetch_.clear();
  handoff_ = std::move(handoff);
  pending_reason_.clear();
  server_max_clients_ = 0;
  server_tick_rate_hz_ = 0;
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
      if (leaving_peer_) PeerLink(endpoint_.get(), leaving_peer_).reset();
      leaving_peer_ = peer_;
      PeerLink(endpoint_.get(), peer_).disconnect(static_cast<uint32_t>(wire::DisconnectCode::leave));
      mark_dirty();
    } else {
      PeerLink(endpoint_.get(), peer_).reset();
    }
    peer_ = nullptr;
  }
  end_connection((hopping_ || script_ ? "hop_failed: " : "fetch_failed: ") + why);
}

void ClientRole::on_welcome(const wire::Welcome& welcome) {
  replay_ = ReliableReplay(options_.resume_buffer_bytes);  // a new session
  seat_token_.clear();  // redeemed: a resume must not present it again
  // A local script keeps running on its first server; a hop keeps the state
  // only when the destination serves the very tree this state runs.
  bool same_tree = !welcome.script_hash.empty() && welcome.script_hash == tree_hash_;
  if (transferring_ && !same_tree) {
    // The servers of a cluster run one tree: the carried request lives in this state.
    fail_hop("transfer_failed: the target serves another script tree");
    return;
  }
  rooms_.on_welcome(welcome);
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
  fetch_.expect(welcome.script_hash, welcome.bundle_bytes);
  std::string cached;
  if (cache_.load(fetch_.hash(), cached)) {
    log_write(LogLevel::info, log_tag_, "script bundle " + to_hex(fetch_.hash()) + " from the cache");
    adopt_bundle(cached);
    return;
  }
  phase_ = Phase::fetching;
  PeerLink(endpoint_.get(), peer_).send_control(wire::encode_bundle_request());
  defer(kFetchTimeoutMs);
  log_write(LogLevel::info, log_tag_,
            "fetching script bundle " + to_hex(fetch_.hash()) + " (" + std::to_string(fetch_.size()) + " bytes)");
}

void ClientRole::on_bundle_part(std::string_view bytes) {
  std::string failure;
  JoinFetch::Part step = fetch_.add_part(bytes, failure);
  if (step == JoinFetch::Part::incomplete) return;
  uv_timer_stop(timer_.get());
  if (step == JoinFetch::Part::failed) {
    fail_hop(std::move(failure));
    return;
  }
  std::string bundle = fetch_.take_bundle();
  std::string error;
  if (!cache_.store(fetch_.hash(), bundle, error)) log_write(LogLevel::warn, log_tag_, "bundle not cached: " + error);
  adopt_bundle(bundle);
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
            "running fetched bundle " + to_hex(fetch_.hash()) + " (" + std::to_string(files) + " files, sandboxed)");
  rooms_.forget_script();  // its refs die with the old state
  script_ = std::move(fresh);
  tree_hash_ = fetch_.hash();
  complete_join();
}

void ClientRole::complete_join() {
  phase_ = Phase::joined;
  hopping_ = false;
  if (stop_requested_) defer(0);
  if (transferring_) {
    // The script asked for a room, not a new server: its callback (or
    // client.match_found) is what it hears of the move.
    transferring_ = false;
    deliver_held();
    return;
  }
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
  for (auto& [channel_id, bytes] : fetch_.take_held()) {
    if (phase_ != Phase::joined) break;
    deliver_data(channel_id, bytes);
  }
}

void ClientRole::deliver_data(uint8_t channel_id, std::string_view bytes) {
  Channel channel = PeerLink::channel_of(channel_id);
  if (channel == Channel::reliable) {
    replay_.on_received();
    schedule_ack();
  }
  script_->invoke("receive", [&](lua_State* L) {
    lua_pushlstring(L, bytes.data(), bytes.size());
    lua_pushstring(L, channel_name(channel));
    return 2;
  });
}

}  // namespace nshost
