// The client's reconnect ladder (docs/reliability.md): only a link that
// dropped (ENet timeout) with a session token is resumed; attempts follow
// --reconnect's delays within its total time, each a connect and a hello
// carrying the token. A resumed welcome replays what the server lacks; an
// unknown token is a fresh join without a handoff; the ladder running out
// ends the connection as "lost".
#include <algorithm>

#include "runtime/roles/client_role.hpp"
#include "runtime/core/log.hpp"
#include "runtime/roles/peer_link.hpp"

namespace nshost {

void ClientRole::on_reconnect_welcome(const wire::Welcome& welcome) {
  reconnecting_ = false;
  if (welcome.resumed) {
    phase_ = Phase::joined;
    rooms_.on_resumed(welcome);
    if (stop_requested_) defer(0);
    // The server checked our replay floor; a count we cannot replay from
    // means a server that does not follow the protocol.
    if (!replay_.acknowledge(welcome.received) || !replay_.can_replay_from(welcome.received))
      log_write(LogLevel::warn, log_tag_,
                "the server says it has " + std::to_string(welcome.received) + " of our " +
                    std::to_string(replay_.numbered()) + " reliable messages; cannot replay from there");
    size_t replayed = PeerLink(endpoint_.get(), peer_).replay(replay_, welcome.received);
    log_write(LogLevel::info, log_tag_,
              "resumed the session in slot " + std::to_string(welcome.slot) + " after " +
                  std::to_string(reconnect_attempt_) + " attempt(s); replayed " + std::to_string(replayed) +
                  " reliable message(s)");
    script_->invoke("resumed");
    deliver_held();
    return;
  }
  // The server no longer knew the token: this is a fresh join, with no handoff.
  rooms_.end_session(true);
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

void ClientRole::on_attempt_refused() {
  // Refused while the server still holds the old link: try again later.
  if (pending_reason_.empty() || pending_reason_ == "rejected: session_in_use") {
    pending_reason_.clear();
    schedule_attempt();
    return;
  }
  reconnecting_ = false;
  end_connection(pending_reason_);
}

void ClientRole::start_reconnect() {
  reconnecting_ = true;
  reconnect_attempt_ = 0;
  reconnect_started_ns_ = monotonic_ns();
  log_write(LogLevel::warn, log_tag_, "lost the link to the server; reconnecting");
  phase_ = Phase::reconnecting;
  rooms_.on_link_lost(true);
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

}  // namespace nshost
