#pragma once
// Resume bookkeeping on the server (seed 002, "server grace window"). Each
// occupied slot has one session token: kSessionTokenBytes random bytes issued
// at the handshake and re-issued (the old one revoked) at every resume, so a
// token resumes its session at most once. The token a resume replaced stays
// good for that slot until the new link is confirmed (the client has sent
// something on it), so a welcome lost with the link does not strand the
// client. When a client's link drops without
// a clean leave, its slot is marked lost with a deadline; the hello that
// presents its current token before the deadline resumes it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nshost {

// kSessionTokenBytes bytes from the kernel's CSPRNG (getrandom).
std::string random_session_token();

class SessionTable {
 public:
  explicit SessionTable(uint32_t capacity);

  // Issues a fresh token for `slot`, revoking any earlier one; the slot is live.
  std::string issue(uint32_t slot);
  // Like issue, but the current token stays valid until confirm(slot).
  std::string reissue(uint32_t slot);
  // The client has used the link its last token came with: drop the previous one.
  void confirm(uint32_t slot);
  // Forgets `slot`'s token and any lost mark.
  void revoke(uint32_t slot);
  // The slot whose current token is exactly `token`.
  std::optional<uint32_t> find(std::string_view token) const;

  // The slot's link dropped: hold it until `deadline_ns` (monotonic). `host`
  // (IPv4, network order) is where the link came from; `now_ns` orders the
  // held slots for eviction_candidate().
  void mark_lost(uint32_t slot, int64_t deadline_ns, uint32_t host = 0, int64_t now_ns = 0);
  bool lost(uint32_t slot) const;
  // Ends a lost slot's window at the next expiry check, with `reason`.
  void expire_now(uint32_t slot, std::string reason);
  // Lost slots whose deadline is at or before `now_ns`, with the reason
  // ("timeout" unless expire_now gave another).
  std::vector<std::pair<uint32_t, std::string>> expired(int64_t now_ns) const;
  size_t lost_count() const;
  // The held slot to end when a fresh join finds no free slot: of the address
  // holding the most lost slots, its oldest (ties: the oldest overall). A
  // slot already being ended (deadline 0) is not offered again.
  std::optional<uint32_t> eviction_candidate() const;

 private:
  struct Entry {
    std::string token;
    std::string previous_token;  // valid until confirm()
    bool lost = false;
    int64_t deadline_ns = 0;
    int64_t lost_at_ns = 0;
    uint32_t host = 0;
    std::string expire_reason;
  };
  std::vector<Entry> entries_;
  std::unordered_map<std::string, uint32_t> by_token_;
};

}  // namespace nshost
