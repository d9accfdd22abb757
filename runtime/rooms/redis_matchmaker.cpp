#include "runtime/rooms/redis_matchmaker.hpp"

#include <algorithm>
#include <charconv>

#include "runtime/core/log.hpp"

namespace nshost::rooms {
namespace {

using cluster::RedisReply;
using cluster::RedisScript;

constexpr std::string_view kPrefix = "nshost:mm:";

// Scores are µs from Redis TIME (about 2^51 now): exact in a double, but a
// number argument would reach ZADD through Lua's %.14g, so the scripts
// format them with %.0f.

// KEYS: queue, ticket hash, last, types, alive. ARGV: ticket id, server,
// session, properties, room type, alive ttl ms, cluster limit.
// -> {1, score} queued, {0, refusal}.
const RedisScript kEnqueue{"mm_enqueue", R"lua(
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0, 'already queued'} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[7]) then return {0, 'queue full'} end
local t = redis.call('TIME')
local score = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if score <= last then score = last + 1 end
local s = string.format('%.0f', score)
redis.call('SET', KEYS[3], s)
redis.call('ZADD', KEYS[1], s, ARGV[1])
redis.call('HSET', KEYS[2], 'server', ARGV[2], 'session', ARGV[3], 'properties', ARGV[4],
           'enqueued_ms', string.format('%.0f', math.floor(score / 1000)))
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[6])
return {1, s}
)lua"};

// KEYS: types. ARGV: ticket id, room type ('' for every type).
// -> tickets removed.
const RedisScript kDequeue{"mm_dequeue", R"lua(
local types = ARGV[2] ~= '' and {ARGV[2]} or redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, ty in ipairs(types) do
  n = n + redis.call('ZREM', 'nshost:mm:queue:' .. ty, ARGV[1])
  redis.call('DEL', 'nshost:mm:ticket:' .. ty .. ':' .. ARGV[1])
end
return n
)lua"};

// The start of a round. KEYS: lease, queue, last. ARGV: server id, lease ms,
// max read, ticket key prefix, alive key prefix, alive ttl ms (the reader
// is alive: its own key is renewed).
// -> {0, lease pttl} when another server holds the lease, else {1, Redis
// now ms, last score, then per ticket (oldest first): id, score, server,
// session, properties}. Tickets of servers whose alive key expired are
// removed on the way.
const RedisScript kRead{"mm_read", R"lua(
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', ARGV[5] .. ARGV[1], '1', 'PX', ARGV[6])
local t = redis.call('TIME')
local out = {1, string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)),
             redis.call('GET', KEYS[3]) or '0'}
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
local alive = {}
for i = 1, #ids, 2 do
  local id = ids[i]
  local h = redis.call('HMGET', ARGV[4] .. id, 'server', 'session', 'properties')
  local live = false
  if h[1] and h[2] then
    live = alive[h[1]]
    if live == nil then
      live = redis.call('EXISTS', ARGV[5] .. h[1]) == 1
      alive[h[1]] = live
    end
  end
  if live then
    out[#out + 1] = id
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = h[3] or ''
  else
    redis.call('ZREM', KEYS[2], id)
    redis.call('DEL', ARGV[4] .. id)
  end
end
return out
)lua"};

// The end of a round. KEYS: lease, queue, last, types. ARGV: server id, the
// last score the round read, group count, then per group: its size and its
// ticket ids. A group is claimed (its tickets leave every type's queue)
// only if all its tickets are still in the queue. The lease is released
// when no enqueue came since the read.
// -> {released 1/0, then 1/0 per group}.
const RedisScript kClaim{"mm_claim", R"lua(
local types = redis.call('SMEMBERS', KEYS[4])
local out = {0}
local i = 4
for g = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[i])
  i = i + 1
  local all = true
  for k = i, i + n - 1 do
    if not redis.call('ZSCORE', KEYS[2], ARGV[k]) then
      all = false
      break
    end
  end
  if all then
    for k = i, i + n - 1 do
      for _, ty in ipairs(types) do
        redis.call('ZREM', 'nshost:mm:queue:' .. ty, ARGV[k])
        redis.call('DEL', 'nshost:mm:ticket:' .. ty .. ':' .. ARGV[k])
      end
    end
  end
  out[#out + 1] = all and 1 or 0
  i = i + n
end
if (redis.call('GET', KEYS[3]) or '0') == ARGV[2] then
  if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
  out[1] = 1
end
return out
)lua"};

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string encode_properties(const rooms::Value& v) {
  if (v.kind == rooms::Value::Kind::nil) return {};
  rooms::Writer w(rooms::Codec::msgpack);
  w.value(v);
  return w.ok() ? w.take() : std::string();
}

std::string last_key(std::string_view room_type) { return std::string(kPrefix) + "last:" + std::string(room_type); }
std::string types_key() { return std::string(kPrefix) + "types"; }

}  // namespace

// One round's read, decoded.
struct RedisMatchmaker::Read {
  uint64_t redis_now_ms = 0;
  std::string last;
  std::vector<std::string> ids;
  std::vector<uint64_t> scores;
  std::vector<rooms::Ticket> tickets;
};

std::string RedisMatchmaker::ticket_id(std::string_view server_id, uint64_t session_id) {
  return std::string(server_id) + "." + std::to_string(session_id);
}
std::string RedisMatchmaker::queue_key(std::string_view room_type) {
  return std::string(kPrefix) + "queue:" + std::string(room_type);
}
std::string RedisMatchmaker::ticket_key(std::string_view room_type, std::string_view ticket_id) {
  return std::string(kPrefix) + "ticket:" + std::string(room_type) + ":" + std::string(ticket_id);
}
std::string RedisMatchmaker::lease_key(std::string_view room_type) {
  return std::string(kPrefix) + "lease:" + std::string(room_type);
}
std::string RedisMatchmaker::alive_key(std::string_view server_id) {
  return std::string(kPrefix) + "alive:" + std::string(server_id);
}

RedisMatchmaker::RedisMatchmaker(uv_loop_t* loop, cluster::RedisClient& redis, RedisMatchmakerConfig config)
    : loop_(loop), redis_(redis), config_(std::move(config)) {
  if (heartbeat_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0) {
    heartbeat_timer_.get()->data = this;
    uv_timer_start(
        heartbeat_timer_.get(),
        [](uv_timer_t* t) {
          if (t->data) static_cast<RedisMatchmaker*>(t->data)->heartbeat();
        },
        0, config_.heartbeat_ms);
  }
}

RedisMatchmaker::~RedisMatchmaker() {
  *alive_ = false;
  heartbeat_timer_.close();
}

void RedisMatchmaker::attach(Eligible eligible, MatchSink sink, std::function<void()> wake) {
  eligible_ = std::move(eligible);
  sink_ = std::move(sink);
  wake_ = std::move(wake);
}

bool RedisMatchmaker::define(rooms::MatchType type, std::string& error) {
  if (types_.count(type.room_type)) {
    error = "room type '" + type.room_type + "' already has matchmaking";
    return false;
  }
  std::string name = type.room_type;
  Type t;
  t.type = std::move(type);
  types_.emplace(std::move(name), std::move(t));
  return true;
}

const rooms::MatchType* RedisMatchmaker::find_type(std::string_view room_type) const {
  auto it = types_.find(room_type);
  return it == types_.end() ? nullptr : &it->second.type;
}

RedisMatchmaker::Type* RedisMatchmaker::find(std::string_view room_type) {
  auto it = types_.find(room_type);
  return it == types_.end() ? nullptr : &it->second;
}

void RedisMatchmaker::wake() {
  if (wake_) wake_();
}

void RedisMatchmaker::load_scripts() {
  // EVALSHA of a script Redis has not seen is answered NOSCRIPT and sent
  // again as EVAL, behind the commands sent meanwhile: loading every script
  // first keeps the commands in the order they were sent (a dequeue before
  // a later claim).
  if (scripts_loaded_ || !redis_.connected()) return;
  scripts_loaded_ = true;
  for (const RedisScript* script : {&kEnqueue, &kDequeue, &kRead, &kClaim})
    redis_.command({"SCRIPT", "LOAD", script->source}, [](const RedisReply*, std::string_view) {});
}

void RedisMatchmaker::enqueue(rooms::Ticket ticket, uint64_t now_ms, EnqueueDone done) {
  load_scripts();
  Type* t = find(ticket.room_type);
  if (!t) return done("not a matchmaking room type");
  if (t->local.count(ticket.session_id)) return done("already queued");
  if (t->local.size() >= config_.max_queued_per_type) return done("queue full");
  const uint64_t session = ticket.session_id;
  const std::string type = ticket.room_type;
  const std::string id = ticket_id(config_.server_id, session);
  std::vector<std::string> keys{queue_key(type), ticket_key(type, id), last_key(type), types_key(),
                                alive_key(config_.server_id)};
  std::vector<std::string> args{id,
                                config_.server_id,
                                std::to_string(session),
                                encode_properties(ticket.properties),
                                type,
                                std::to_string(alive_ttl_ms()),
                                std::to_string(config_.max_cluster_queued)};
  ticket.enqueued_ms = now_ms;
  t->local[session] = Local{std::move(ticket), now_ms, false};
  auto shared_done = std::make_shared<EnqueueDone>(std::move(done));
  bool sent = redis_.eval(
      kEnqueue, std::move(keys), std::move(args),
      [this, alive = alive_, type, session, shared_done](const RedisReply* reply, std::string_view error) {
        if (!*alive) return;
        Type* t = find(type);
        auto it = t ? t->local.find(session) : decltype(t->local)::iterator{};
        bool here = t && it != t->local.end();
        std::optional<std::string> refusal;
        if (!reply || reply->is_error() || reply->type != RedisReply::Type::array || reply->elements.size() != 2) {
          if (reply && reply->is_error())
            log_write(LogLevel::warn, "cluster", "matchmaking: enqueue script failed: " + reply->str);
          else if (!reply)
            log_write(LogLevel::debug, "cluster", "matchmaking: enqueue failed: " + std::string(error));
          refusal = "cluster_unavailable";
        } else if (reply->elements[0].integer != 1 && reply->elements[1].str != "already queued") {
          // (Redis still holding this session's ticket, checked here before
          // sending, is a ticket kept across a lost connection: queued.)
          refusal = reply->elements[1].str;
        }
        if (refusal) {
          if (here) t->local.erase(it);
        } else if (here) {
          it->second.in_redis = true;
          t->changed = true;
        }
        (*shared_done)(std::move(refusal));
        if (answered_) answered_(session);
        wake();
      });
  if (!sent) {
    t->local.erase(session);
    (*shared_done)("cluster_unavailable");
  }
}

void RedisMatchmaker::send_dequeue(uint64_t session_id, std::string_view room_type) {
  load_scripts();
  // Best effort: a ticket Redis keeps (it was down) is dropped by the next
  // round once its server's alive key expires, or refused by the claim's
  // owner when the match arrives for a session no longer queued.
  redis_.eval(kDequeue, {types_key()}, {ticket_id(config_.server_id, session_id), std::string(room_type)},
              [](const RedisReply*, std::string_view) {});
}

size_t RedisMatchmaker::dequeue(uint64_t session_id, std::optional<std::string_view> room_type) {
  size_t removed = 0;
  for (auto& [name, t] : types_) {
    if (room_type && name != *room_type) continue;
    removed += t.local.erase(session_id);
  }
  if (removed) send_dequeue(session_id, room_type ? *room_type : std::string_view());
  return removed;
}

size_t RedisMatchmaker::queued(std::string_view room_type) const {
  auto it = types_.find(room_type);
  return it == types_.end() ? 0 : it->second.local.size();
}

bool RedisMatchmaker::is_queued(uint64_t session_id, std::string_view room_type) const {
  auto it = types_.find(room_type);
  return it != types_.end() && it->second.local.count(session_id);
}

bool RedisMatchmaker::awaiting_answer(uint64_t session_id) const {
  for (const auto& [name, t] : types_)
    if (auto it = t.local.find(session_id); it != t.local.end() && !it->second.in_redis) return true;
  return false;
}

void RedisMatchmaker::forget(uint64_t session_id) {
  for (auto& [name, t] : types_) t.local.erase(session_id);
}

void RedisMatchmaker::form(uint64_t now_ms) {
  load_scripts();
  for (auto& [name, t] : types_) {
    // A round whose answer never came (it cannot, short of a bug) does not
    // stop the type for good.
    if (t.forming && now_ms >= t.last_round_ms + 2 * uint64_t{config_.lease_ms}) t.forming = false;
    if (t.forming) continue;
    bool is_due = t.changed || (t.retry_ms && now_ms >= *t.retry_ms) || (t.deadline_ms && now_ms >= *t.deadline_ms);
    if (!is_due && !t.local.empty()) {
      // This server's own deadlines, and a slow poll while it has players
      // waiting (a holder that died, a lost answer).
      for (const auto& [session, l] : t.local)
        if (t.type.min_size < t.type.size && now_ms >= l.local_enqueued_ms + t.type.max_wait_ms) is_due = true;
      if (now_ms >= t.last_round_ms + config_.heartbeat_ms) is_due = true;
    }
    if (is_due) start_round(t);
  }
}

std::optional<uint64_t> RedisMatchmaker::next_due_ms(uint64_t now_ms) const {
  std::optional<uint64_t> due;
  auto consider = [&](uint64_t at) {
    at = std::max(at, now_ms);
    if (!due || at < *due) due = at;
  };
  for (const auto& [name, t] : types_) {
    if (t.forming) {
      consider(t.last_round_ms + 2 * uint64_t{config_.lease_ms});
      continue;
    }
    if (t.changed) consider(now_ms);
    if (t.retry_ms) consider(*t.retry_ms);
    if (t.deadline_ms) consider(*t.deadline_ms);
    if (t.local.empty()) continue;
    consider(t.last_round_ms + config_.heartbeat_ms);
    if (t.type.min_size < t.type.size)
      for (const auto& [session, l] : t.local) consider(l.local_enqueued_ms + t.type.max_wait_ms);
  }
  return due;
}

void RedisMatchmaker::clear() {
  for (auto& [name, t] : types_) {
    for (const auto& [session, l] : t.local) send_dequeue(session, name);
    t.local.clear();
    t.changed = false;
    t.retry_ms.reset();
    t.deadline_ms.reset();
    t.verdicts.clear();
  }
}

void RedisMatchmaker::on_redis_up() {
  for (auto& [name, t] : types_) {
    std::vector<Local> again;
    for (auto& [session, l] : t.local)
      if (l.in_redis) again.push_back(l);
    for (Local& l : again) {
      t.local.erase(l.ticket.session_id);
      // Queued again at the back (Redis may have lost the order); the
      // session keeps its local deadline.
      enqueue(std::move(l.ticket), l.local_enqueued_ms, [](std::optional<std::string>) {});
    }
    t.changed = true;
  }
  wake();
}

void RedisMatchmaker::heartbeat() {
  const bool up = redis_.connected();
  const bool back = up && !redis_was_up_;
  redis_was_up_ = up;
  if (!up) {
    scripts_loaded_ = false;  // Redis may come back empty
    return;
  }
  load_scripts();
  redis_.command({"SET", alive_key(config_.server_id), "1", "PX", std::to_string(alive_ttl_ms())},
                 [](const RedisReply*, std::string_view) {});
  if (back && had_redis_) on_redis_up();
  had_redis_ = true;
}

void RedisMatchmaker::start_round(Type& t) {
  t.changed = false;
  t.retry_ms.reset();
  t.deadline_ms.reset();
  t.last_round_ms = now();
  const std::string& type = t.type.room_type;
  std::string prefix = ticket_key(type, "");
  bool sent = redis_.eval(kRead, {lease_key(type), queue_key(type), last_key(type)},
                          {config_.server_id, std::to_string(config_.lease_ms), std::to_string(config_.max_read),
                           prefix, alive_key(""), std::to_string(alive_ttl_ms())},
                          [this, alive = alive_, type](const RedisReply* reply, std::string_view) {
                            if (*alive) on_read(type, reply);
                          });
  if (!sent) {
    // Redis is down: on_redis_up() makes the round due again.
    return;
  }
  t.forming = true;
  ++rounds_;
}

void RedisMatchmaker::finish_round(Type& t, std::optional<uint64_t> retry_in_ms) {
  t.forming = false;
  if (retry_in_ms) t.retry_ms = now() + *retry_in_ms;
  wake();
}

void RedisMatchmaker::on_read(const std::string& room_type, const RedisReply* reply) {
  Type* tp = find(room_type);
  if (!tp) return;
  Type& t = *tp;
  if (!reply || reply->type != RedisReply::Type::array || reply->elements.size() < 2) {
    if (reply && reply->is_error())
      log_write(LogLevel::warn, "cluster", "matchmaking: read script failed: " + reply->str);
    return finish_round(t, config_.heartbeat_ms);
  }
  const auto& e = reply->elements;
  if (e[0].integer != 1) {
    // Another server forms this type now; it forms again itself if the
    // queue changed under it, so this is only the fallback for a holder
    // that died.
    uint64_t pttl = e[1].integer > 0 ? static_cast<uint64_t>(e[1].integer) : 1;
    return finish_round(t, t.local.empty() ? std::nullopt : std::optional<uint64_t>(pttl + 1));
  }
  Read read;
  parse_u64(e[1].str, read.redis_now_ms);
  read.last = e.size() > 2 ? e[2].str : "0";
  for (size_t i = 3; i + 4 < e.size(); i += 5) {
    uint64_t score = 0, session = 0;
    if (!parse_u64(e[i + 1].str, score) || !parse_u64(e[i + 3].str, session)) continue;
    rooms::Ticket ticket;
    ticket.serial = score;
    ticket.session_id = session;
    ticket.room_type = room_type;
    ticket.enqueued_ms = score / 1000;
    ticket.server = e[i + 2].str == config_.server_id ? std::string() : e[i + 2].str;
    if (!e[i + 4].str.empty()) {
      std::string error;
      if (!rooms::decode(rooms::Codec::msgpack, e[i + 4].str, ticket.properties, error)) ticket.properties = {};
    }
    read.ids.push_back(e[i].str);
    read.scores.push_back(score);
    read.tickets.push_back(std::move(ticket));
  }
  // This server's tickets Redis no longer has (matched by another server,
  // dropped) are forgotten when the read saw the whole queue.
  if (read.tickets.size() < config_.max_read) {
    std::vector<uint64_t> gone;
    for (const auto& [session, l] : t.local) {
      if (!l.in_redis) continue;
      bool found = false;
      for (const rooms::Ticket& k : read.tickets)
        if (k.server.empty() && k.session_id == session) {
          found = true;
          break;
        }
      if (!found) gone.push_back(session);
    }
    for (uint64_t s : gone) t.local.erase(s);
  }
  // Eligible: another server's ticket (its server checks when seating), or
  // one of ours still queued here whose link is up.
  auto eligible = [&](size_t i) {
    const rooms::Ticket& k = read.tickets[i];
    if (!k.server.empty()) return true;
    if (!t.local.count(k.session_id)) return false;
    return !eligible_ || eligible_(k.session_id);
  };
  auto compatible = [&](size_t older, size_t newer) {
    if (!t.type.predicate) return true;
    auto [it, fresh] = t.verdicts.try_emplace({read.scores[older], read.scores[newer]}, false);
    if (fresh) {
      ++predicate_calls_;
      it->second = t.type.predicate->compatible(read.tickets[older], read.tickets[newer]);
    }
    return it->second;
  };
  rooms::Grouping g =
      rooms::group_tickets(t.type, read.tickets.size(), read.redis_now_ms,
                           [&](size_t i) { return read.tickets[i].enqueued_ms; }, eligible, compatible);
  // Verdicts of tickets that left are dropped.
  if (!t.verdicts.empty()) {
    std::vector<uint64_t> sorted = read.scores;
    std::sort(sorted.begin(), sorted.end());
    auto present = [&](uint64_t s) { return std::binary_search(sorted.begin(), sorted.end(), s); };
    for (auto it = t.verdicts.begin(); it != t.verdicts.end();)
      it = present(it->first.first) && present(it->first.second) ? std::next(it) : t.verdicts.erase(it);
  }
  if (g.next_deadline_ms) {
    uint64_t in = *g.next_deadline_ms > read.redis_now_ms ? *g.next_deadline_ms - read.redis_now_ms : 0;
    t.deadline_ms = now() + in;
  }
  std::vector<std::string> args{config_.server_id, read.last, std::to_string(g.groups.size())};
  for (const auto& group : g.groups) {
    args.push_back(std::to_string(group.size()));
    for (size_t i : group) args.push_back(read.ids[i]);
  }
  auto groups = std::make_shared<std::vector<rooms::Match>>();
  for (const auto& group : g.groups) {
    rooms::Match m;
    m.room_type = room_type;
    for (size_t i : group) m.participants.push_back(read.tickets[i]);
    groups->push_back(std::move(m));
  }
  bool sent = redis_.eval(
      kClaim, {lease_key(room_type), queue_key(room_type), last_key(room_type), types_key()}, std::move(args),
      [this, alive = alive_, room_type, groups](const RedisReply* reply, std::string_view) {
        if (!*alive) return;
        Type* tp = find(room_type);
        if (!tp) return;
        Type& t = *tp;
        if (!reply || reply->type != RedisReply::Type::array || reply->elements.size() != groups->size() + 1) {
          if (reply && reply->is_error())
            log_write(LogLevel::warn, "cluster", "matchmaking: claim script failed: " + reply->str);
          // Unknown whether the claim ran: the next round reads what is left.
          t.changed = true;
          return finish_round(t, std::nullopt);
        }
        if (reply->elements[0].integer != 1) t.changed = true;  // enqueued since the read
        std::vector<rooms::Match> claimed;
        for (size_t i = 0; i < groups->size(); ++i) {
          if (reply->elements[i + 1].integer != 1) {
            ++claims_refused_;
            t.changed = true;
            continue;
          }
          for (const rooms::Ticket& k : (*groups)[i].participants)
            if (k.server.empty()) forget(k.session_id);
          claimed.push_back(std::move((*groups)[i]));
        }
        t.forming = false;
        if (!claimed.empty() && sink_) sink_(std::move(claimed));
        wake();
      });
  if (!sent) finish_round(t, config_.heartbeat_ms);
}

}  // namespace nshost::rooms
