#include "runtime/rooms/matchmaker.hpp"

#include <algorithm>
#include <unordered_set>

namespace nshost::rooms {

Grouping group_tickets(const MatchType& type, size_t count, uint64_t now_ms,
                       const std::function<uint64_t(size_t)>& enqueued_ms,
                       const std::function<bool(size_t)>& eligible,
                       const std::function<bool(size_t older, size_t newer)>& compatible) {
  Grouping out;
  std::vector<bool> taken(count, false);
  std::vector<size_t> group;
  std::optional<uint64_t> next_deadline;
  // Eligibility asked once per ticket per pass.
  std::vector<int8_t> can(count, -1);
  auto ok = [&](size_t i) {
    if (can[i] < 0) can[i] = eligible(i) ? 1 : 0;
    return can[i] == 1;
  };
  for (size_t i = 0; i < count; ++i) {
    if (taken[i] || !ok(i)) continue;
    group.assign(1, i);
    for (size_t j = i + 1; j < count && group.size() < type.size; ++j) {
      if (taken[j] || !ok(j)) continue;
      bool fits = true;
      for (size_t g : group)
        if (!compatible(g, j)) {
          fits = false;
          break;
        }
      if (fits) group.push_back(j);
    }
    uint64_t deadline = enqueued_ms(i) + type.max_wait_ms;
    bool waited = now_ms >= deadline;
    if (group.size() >= type.size || (waited && group.size() >= type.min_size)) {
      for (size_t g : group) taken[g] = true;
      out.groups.push_back(group);
    } else if (!waited && (!next_deadline || deadline < *next_deadline)) {
      next_deadline = deadline;
    }
  }
  // Only a group smaller than `size` waits for a deadline.
  if (type.min_size < type.size) out.next_deadline_ms = next_deadline;
  return out;
}

void InProcessMatchmaker::attach(Eligible eligible, MatchSink sink, std::function<void()>) {
  eligible_ = std::move(eligible);
  sink_ = std::move(sink);
}

void InProcessMatchmaker::enqueue(Ticket ticket, uint64_t now_ms, EnqueueDone done) {
  auto refusal = enqueue(std::move(ticket), now_ms);
  if (done) done(std::move(refusal));
}

void InProcessMatchmaker::form(uint64_t now_ms) {
  std::vector<Match> matches = form(now_ms, eligible_ ? eligible_ : Eligible([](uint64_t) { return true; }));
  if (sink_ && !matches.empty()) sink_(std::move(matches));
}

bool InProcessMatchmaker::define(MatchType type, std::string& error) {
  if (queues_.count(type.room_type)) {
    error = "room type '" + type.room_type + "' already has matchmaking";
    return false;
  }
  std::string name = type.room_type;
  Queue q;
  q.type = std::move(type);
  queues_.emplace(std::move(name), std::move(q));
  return true;
}

const MatchType* InProcessMatchmaker::find_type(std::string_view room_type) const {
  auto it = queues_.find(room_type);
  return it == queues_.end() ? nullptr : &it->second.type;
}

std::optional<std::string> InProcessMatchmaker::enqueue(Ticket ticket, uint64_t now_ms) {
  auto it = queues_.find(ticket.room_type);
  if (it == queues_.end()) return "not a matchmaking room type";
  Queue& q = it->second;
  for (const Waiting& w : q.waiting)
    if (w.ticket.session_id == ticket.session_id) return "already queued";
  if (q.waiting.size() >= max_queued_) return "queue full";
  ticket.serial = next_serial_++;
  ticket.enqueued_ms = now_ms;
  q.waiting.push_back(Waiting{std::move(ticket), {}});
  q.changed = true;
  return std::nullopt;
}

size_t InProcessMatchmaker::dequeue(uint64_t session_id, std::optional<std::string_view> room_type) {
  if (forming_) {
    // From inside a match call (the script ended a session): the queues are
    // being walked, so the removal waits for the end of the pass.
    size_t n = 0;
    for (const auto& [name, q] : queues_)
      if (!room_type || name == *room_type) n += is_queued(session_id, name);
    deferred_.emplace_back(session_id, room_type ? std::optional<std::string>(*room_type) : std::nullopt);
    return n;
  }
  size_t removed = 0;
  for (auto& [name, q] : queues_) {
    if (room_type && name != *room_type) continue;
    auto end = std::remove_if(q.waiting.begin(), q.waiting.end(),
                              [&](const Waiting& w) { return w.ticket.session_id == session_id; });
    removed += static_cast<size_t>(q.waiting.end() - end);
    q.waiting.erase(end, q.waiting.end());
  }
  return removed;
}

size_t InProcessMatchmaker::queued(std::string_view room_type) const {
  auto it = queues_.find(room_type);
  return it == queues_.end() ? 0 : it->second.waiting.size();
}

bool InProcessMatchmaker::is_queued(uint64_t session_id, std::string_view room_type) const {
  auto it = queues_.find(room_type);
  if (it == queues_.end()) return false;
  return std::any_of(it->second.waiting.begin(), it->second.waiting.end(),
                     [&](const Waiting& w) { return w.ticket.session_id == session_id; });
}

bool InProcessMatchmaker::compatible(Queue& q, Waiting& older, Waiting& newer) {
  if (!q.type.predicate) return true;
  auto [it, fresh] = newer.verdicts.try_emplace(older.ticket.serial, false);
  if (fresh) {
    ++predicate_calls_;
    it->second = q.type.predicate->compatible(older.ticket, newer.ticket);
  }
  return it->second;
}

void InProcessMatchmaker::form_in(Queue& q, uint64_t now_ms, const Eligible& eligible, std::vector<Match>& out) {
  Grouping g = group_tickets(
      q.type, q.waiting.size(), now_ms, [&](size_t i) { return q.waiting[i].ticket.enqueued_ms; },
      [&](size_t i) { return eligible(q.waiting[i].ticket.session_id); },
      [&](size_t older, size_t newer) { return compatible(q, q.waiting[older], q.waiting[newer]); });
  std::vector<bool> taken(q.waiting.size(), false);
  for (const auto& group : g.groups) {
    Match m;
    m.room_type = q.type.room_type;
    for (size_t i : group) {
      taken[i] = true;
      m.participants.push_back(q.waiting[i].ticket);
    }
    out.push_back(std::move(m));
  }
  std::deque<Waiting> left;
  for (size_t i = 0; i < q.waiting.size(); ++i)
    if (!taken[i]) left.push_back(std::move(q.waiting[i]));
  q.waiting.swap(left);
  q.changed = false;
  q.next_deadline_ms = g.next_deadline_ms;
}

std::vector<Match> InProcessMatchmaker::form(uint64_t now_ms, const Eligible& eligible) {
  std::vector<Match> out;
  // A player waiting for several types plays in one match: once matched it
  // is passed over by the other types in this pass and leaves their queues.
  std::unordered_set<uint64_t> matched;
  forming_ = true;
  auto available = [&](uint64_t session) { return !matched.count(session) && eligible(session); };
  for (auto& [name, q] : queues_) {
    bool due = q.changed || (q.next_deadline_ms && now_ms >= *q.next_deadline_ms);
    if (due && !q.waiting.empty()) {
      size_t first = out.size();
      form_in(q, now_ms, available, out);
      for (size_t i = first; i < out.size(); ++i)
        for (const Ticket& t : out[i].participants) matched.insert(t.session_id);
    } else if (q.waiting.empty()) {
      q.changed = false;
      q.next_deadline_ms.reset();
    }
  }
  forming_ = false;
  for (uint64_t session : matched) dequeue(session, std::nullopt);
  std::vector<std::pair<uint64_t, std::optional<std::string>>> deferred;
  deferred.swap(deferred_);
  for (const auto& [session, type] : deferred) dequeue(session, type);
  return out;
}

std::optional<uint64_t> InProcessMatchmaker::next_due_ms(uint64_t now_ms) const {
  std::optional<uint64_t> due;
  for (const auto& [name, q] : queues_) {
    std::optional<uint64_t> at;
    if (q.changed && !q.waiting.empty()) at = now_ms;
    else if (q.next_deadline_ms && !q.waiting.empty()) at = std::max(*q.next_deadline_ms, now_ms);
    if (at && (!due || *at < *due)) due = at;
  }
  return due;
}

void InProcessMatchmaker::clear() {
  for (auto& [name, q] : queues_) {
    q.waiting.clear();
    q.changed = false;
    q.next_deadline_ms.reset();
  }
}

}  // namespace nshost::rooms
