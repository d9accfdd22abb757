#include "runtime/roles/session.hpp"

#include <sys/random.h>

#include <stdexcept>

#include "runtime/transport/wire.hpp"

namespace nshost {

std::string random_session_token() {
  std::string token(wire::kSessionTokenBytes, '\0');
  size_t filled = 0;
  while (filled < token.size()) {
    ssize_t n = getrandom(token.data() + filled, token.size() - filled, 0);
    if (n < 0) throw std::runtime_error("getrandom failed");
    filled += static_cast<size_t>(n);
  }
  return token;
}

SessionTable::SessionTable(uint32_t capacity) : entries_(capacity) {}

std::string SessionTable::issue(uint32_t slot) {
  revoke(slot);
  std::string token;
  do token = random_session_token();
  while (by_token_.count(token));
  entries_[slot].token = token;
  by_token_[token] = slot;
  return token;
}

std::string SessionTable::reissue(uint32_t slot) {
  Entry& e = entries_[slot];
  std::string keep = std::move(e.token);
  if (!e.previous_token.empty()) by_token_.erase(e.previous_token);
  e.token.clear();
  e.previous_token.clear();
  std::string token = issue(slot);  // issue() revokes nothing left now
  if (!keep.empty()) entries_[slot].previous_token = std::move(keep);  // still mapped in by_token_
  return token;
}

void SessionTable::confirm(uint32_t slot) {
  Entry& e = entries_[slot];
  if (e.previous_token.empty()) return;
  by_token_.erase(e.previous_token);
  e.previous_token.clear();
}

void SessionTable::revoke(uint32_t slot) {
  Entry& e = entries_[slot];
  if (!e.token.empty()) by_token_.erase(e.token);
  if (!e.previous_token.empty()) by_token_.erase(e.previous_token);
  e = Entry{};
}

std::optional<uint32_t> SessionTable::find(std::string_view token) const {
  if (token.size() != wire::kSessionTokenBytes) return std::nullopt;
  auto it = by_token_.find(std::string(token));
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

void SessionTable::mark_lost(uint32_t slot, int64_t deadline_ns, uint32_t host, int64_t now_ns) {
  entries_[slot].lost = true;
  entries_[slot].deadline_ns = deadline_ns;
  entries_[slot].host = host;
  entries_[slot].lost_at_ns = now_ns;
  entries_[slot].expire_reason = "timeout";
}

bool SessionTable::lost(uint32_t slot) const { return slot < entries_.size() && entries_[slot].lost; }

void SessionTable::expire_now(uint32_t slot, std::string reason) {
  if (!entries_[slot].lost) return;
  entries_[slot].deadline_ns = 0;
  entries_[slot].expire_reason = std::move(reason);
}

std::vector<std::pair<uint32_t, std::string>> SessionTable::expired(int64_t now_ns) const {
  std::vector<std::pair<uint32_t, std::string>> out;
  for (uint32_t slot = 0; slot < entries_.size(); ++slot) {
    const Entry& e = entries_[slot];
    if (e.lost && e.deadline_ns <= now_ns) out.emplace_back(slot, e.expire_reason);
  }
  return out;
}

std::optional<uint32_t> SessionTable::eviction_candidate() const {
  std::unordered_map<uint32_t, size_t> held_by_host;
  for (const Entry& e : entries_)
    if (e.lost) ++held_by_host[e.host];
  std::optional<uint32_t> best;
  size_t best_held = 0;
  for (uint32_t slot = 0; slot < entries_.size(); ++slot) {
    const Entry& e = entries_[slot];
    if (!e.lost || e.deadline_ns == 0) continue;
    size_t held = held_by_host[e.host];
    if (!best || held > best_held || (held == best_held && e.lost_at_ns < entries_[*best].lost_at_ns)) {
      best = slot;
      best_held = held;
    }
  }
  return best;
}

size_t SessionTable::lost_count() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.lost;
  return n;
}

}  // namespace nshost
