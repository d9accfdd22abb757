#pragma once
// The matchmaker's queue (docs/matchmaking.md): who waits for which room
// type, and which groups of them make a match. `Matchmaker` is the interface
// the room manager drives; `InProcessMatchmaker` keeps the queue in this
// process (the default). Another implementation (a queue shared by several
// servers) can stand behind the same interface: the room manager only
// enqueues, dequeues, forgets departed sessions and asks for the matches
// formed so far.
// Nothing here touches libuv or Lua: time comes in as `now_ms`, and a type's
// `match` function reaches the matcher as a MatchPredicate.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/rooms/codec.hpp"

namespace nshost::rooms {

// One player waiting: a session, the type it waits for and the properties
// it sent (a map, or nil).
struct Ticket {
  uint64_t serial = 0;      // enqueue order, never reused (set by the matchmaker)
  uint64_t session_id = 0;
  std::string room_type;
  Value properties;
  uint64_t enqueued_ms = 0;  // the `now_ms` of the enqueue
  // The server the session is on, for a queue shared by several servers
  // (its id in the cluster); empty for a session of this server.
  std::string server;
};

// A type's `match(a, b)`: whether two waiting players may play together.
// Called on the loop thread; it must not throw, and answers false for a
// function that failed (its implementation reports that).
class MatchPredicate {
 public:
  virtual ~MatchPredicate() = default;
  virtual bool compatible(const Ticket& a, const Ticket& b) = 0;
};

// matchmaking.define's options for one room type.
struct MatchType {
  static constexpr uint32_t kMaxSize = 4096;
  static constexpr uint64_t kMaxWaitMs = 86400ull * 1000;
  std::string room_type;
  uint32_t size = 2;       // players per match
  uint32_t min_size = 2;   // after max_wait_ms, a group this big may start
  uint64_t max_wait_ms = 30000;
  std::shared_ptr<MatchPredicate> predicate;  // null: any players match
};

// A group formed: its tickets, oldest first.
struct Match {
  std::string room_type;
  std::vector<Ticket> participants;
};

// The grouping rules every matchmaker shares (docs/matchmaking.md "Rules"),
// over `count` tickets in enqueue order: each pass takes the oldest eligible
// ticket not yet grouped as the anchor and adds, in order, every later
// eligible ticket compatible with all of the group so far, until the group
// has `type.size`; a full group starts, and so does a group of at least
// `type.min_size` whose anchor has waited `type.max_wait_ms` (anchor's
// enqueued_ms + max_wait_ms <= now_ms). Otherwise the anchor waits and the
// next one tries. The callbacks take indexes into the caller's tickets;
// `compatible(older, newer)` is asked only for older < newer.
struct Grouping {
  std::vector<std::vector<size_t>> groups;  // each oldest first, in anchor order
  // The earliest max_wait deadline of an anchor that waits (only when
  // min_size < size), or nullopt.
  std::optional<uint64_t> next_deadline_ms;
};
Grouping group_tickets(const MatchType& type, size_t count, uint64_t now_ms,
                       const std::function<uint64_t(size_t)>& enqueued_ms,
                       const std::function<bool(size_t)>& eligible,
                       const std::function<bool(size_t older, size_t newer)>& compatible);

// How the room manager drives a queue. The calls that may need a queue
// elsewhere (Redis) answer through callbacks: an in-process queue calls them
// before returning, a shared one later, from the loop.
class Matchmaker {
 public:
  using EnqueueDone = std::function<void(std::optional<std::string> refusal)>;
  using Eligible = std::function<bool(uint64_t session_id)>;
  using MatchSink = std::function<void(std::vector<Match> matches)>;

  virtual ~Matchmaker() = default;
  // Where results go, set once by the owner before anything is queued:
  // `eligible(session)` says whether one of this server's sessions may be
  // matched now (a session whose link is down waits, passed over); `sink`
  // gets the matches formed (from form(), or later); `wake` is called when
  // next_due_ms changed outside a call (an answer from elsewhere arrived).
  virtual void attach(Eligible eligible, MatchSink sink, std::function<void()> wake) = 0;
  // False with `error` when the type is already defined.
  virtual bool define(MatchType type, std::string& error) = 0;
  virtual const MatchType* find_type(std::string_view room_type) const = 0;
  // Queues `ticket` (its serial and enqueued_ms are set by the queue);
  // `done(refusal)` is called exactly once: nullopt when queued, else "not a
  // matchmaking room type", "already queued", "queue full" (or, for a queue
  // elsewhere, "cluster_unavailable").
  virtual void enqueue(Ticket ticket, uint64_t now_ms, EnqueueDone done) = 0;
  // Removes the session's tickets (of one type, or all when none is named);
  // returns how many this server had queued.
  virtual size_t dequeue(uint64_t session_id, std::optional<std::string_view> room_type) = 0;
  // This server's sessions waiting for the type.
  virtual size_t queued(std::string_view room_type) const = 0;
  virtual bool is_queued(uint64_t session_id, std::string_view room_type) const = 0;
  // Forms the matches that can start at `now_ms` and hands them to the sink,
  // removing their tickets; a session is in at most one match and, once
  // matched, leaves every queue.
  virtual void form(uint64_t now_ms) = 0;
  // When form() next has work: `now_ms` when a queue changed since the last
  // form(), the next max_wait deadline, or nullopt for none.
  virtual std::optional<uint64_t> next_due_ms(uint64_t now_ms) const = 0;
  // Empties every queue of this server's sessions (shutdown).
  virtual void clear() = 0;
};

// The queue in this process. Per type, tickets wait in enqueue order and
// are grouped by group_tickets. A predicate's verdict for a pair is kept for the pair's life in the queue
// (properties do not change), so each pair is asked once.
class InProcessMatchmaker final : public Matchmaker {
 public:
  static constexpr size_t kDefaultMaxQueued = 1024;
  explicit InProcessMatchmaker(size_t max_queued_per_type = kDefaultMaxQueued) : max_queued_(max_queued_per_type) {}

  void attach(Eligible eligible, MatchSink sink, std::function<void()> wake) override;
  bool define(MatchType type, std::string& error) override;
  const MatchType* find_type(std::string_view room_type) const override;
  // Calls `done` before returning.
  void enqueue(Ticket ticket, uint64_t now_ms, EnqueueDone done) override;
  size_t dequeue(uint64_t session_id, std::optional<std::string_view> room_type) override;
  size_t queued(std::string_view room_type) const override;
  bool is_queued(uint64_t session_id, std::string_view room_type) const override;
  // Hands the matches to the sink before returning.
  void form(uint64_t now_ms) override;
  std::optional<uint64_t> next_due_ms(uint64_t now_ms) const override;
  void clear() override;

  // The same, answered directly (no sink): the refusal, or nullopt when queued.
  std::optional<std::string> enqueue(Ticket ticket, uint64_t now_ms);
  // The matches due at `now_ms`, given who is eligible.
  std::vector<Match> form(uint64_t now_ms, const Eligible& eligible);

  // Predicate calls made so far (each pair once).
  uint64_t predicate_calls() const { return predicate_calls_; }

 private:
  struct Waiting {
    Ticket ticket;
    // Verdicts about older tickets, by their serial.
    std::unordered_map<uint64_t, bool> verdicts;
  };
  struct Queue {
    MatchType type;
    std::deque<Waiting> waiting;  // enqueue order
    bool changed = false;         // enqueued since the last pass
    std::optional<uint64_t> next_deadline_ms;  // the earliest max_wait not yet reached
  };
  bool compatible(Queue& q, Waiting& older, Waiting& newer);
  void form_in(Queue& q, uint64_t now_ms, const Eligible& eligible, std::vector<Match>& out);

  size_t max_queued_;
  Eligible eligible_;
  MatchSink sink_;
  bool forming_ = false;  // inside form(): dequeues wait in deferred_
  std::vector<std::pair<uint64_t, std::optional<std::string>>> deferred_;
  std::map<std::string, Queue, std::less<>> queues_;
  uint64_t next_serial_ = 1;
  uint64_t predicate_calls_ = 0;
};

}  // namespace nshost::rooms
