#include "runtime/cluster/inbox.hpp"

#include "runtime/core/log.hpp"

namespace nshost::cluster {

namespace {
constexpr const char* kUnavailable = "cluster_unavailable";
}

std::string Inbox::channel_of(std::string_view server_id) { return "nshost:inbox:" + std::string(server_id); }

Inbox::Inbox(uv_loop_t* loop, RedisClient& redis, std::string server_id, std::string log_tag)
    : loop_(loop), redis_(redis), id_(std::move(server_id)), tag_(std::move(log_tag)) {
  if (sweep_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0) sweep_.get()->data = this;
  if (later_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0)
    later_timer_.get()->data = this;
}

Inbox::~Inbox() {
  *alive_ = false;
  redis_.unsubscribe(channel_of(id_));
}

void Inbox::start() {
  redis_.subscribe(channel_of(id_), [this](std::string_view, std::string_view message) { on_message(message); });
}

void Inbox::on(std::string kind, Handler handler) { handlers_[std::move(kind)] = std::move(handler); }

void Inbox::later(std::function<void()> fn) {
  later_.push_back(std::move(fn));
  if (!later_timer_) return;
  uv_timer_start(
      later_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Inbox*>(t->data);
        if (!self) return;
        auto fns = std::move(self->later_);
        self->later_.clear();
        for (auto& fn : fns) fn();
      },
      0, 0);
}

void Inbox::request(std::string_view to, std::string kind, nlohmann::json body, Done done, uint32_t deadline_ms) {
  if (!redis_.connected() || pending_.size() >= kMaxPending) {
    later([done = std::move(done)] { done(nullptr, kUnavailable); });
    return;
  }
  uint64_t rid = next_rid_++;
  nlohmann::json message{{"k", "req"}, {"kind", std::move(kind)}, {"rid", rid}, {"from", id_}, {"body", std::move(body)}};
  std::weak_ptr<bool> alive = alive_;
  std::string error;
  bool sent = redis_.command(
      {"PUBLISH", channel_of(to), message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)},
      [this, alive, rid](const RedisReply* reply, std::string_view) {
        if (alive.expired()) return;
        // Nobody subscribed: the target is gone.
        if (!reply || reply->is_error() || (reply->type == RedisReply::Type::integer && reply->integer == 0))
          finish(rid, nullptr);
      },
      &error);
  if (!sent) {
    later([done = std::move(done)] { done(nullptr, kUnavailable); });
    return;
  }
  pending_[rid] = Pending{std::move(done), uv_now(loop_) + deadline_ms};
  arm();
}

void Inbox::arm() {
  if (!sweep_ || pending_.empty() || uv_is_active(reinterpret_cast<uv_handle_t*>(sweep_.get()))) return;
  uv_timer_start(
      sweep_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<Inbox*>(t->data)->sweep();
      },
      50, 0);
}

void Inbox::sweep() {
  uint64_t now = uv_now(loop_);
  std::vector<uint64_t> late;
  for (const auto& [rid, p] : pending_)
    if (p.deadline_ms <= now) late.push_back(rid);
  for (uint64_t rid : late) finish(rid, nullptr);
  arm();
}

void Inbox::finish(uint64_t rid, const nlohmann::json* answer) {
  auto it = pending_.find(rid);
  if (it == pending_.end()) return;
  Done done = std::move(it->second.done);
  pending_.erase(it);
  done(answer, answer ? std::string_view() : std::string_view(kUnavailable));
}

void Inbox::fail_all() {
  std::vector<uint64_t> rids;
  for (const auto& [rid, p] : pending_) rids.push_back(rid);
  for (uint64_t rid : rids) finish(rid, nullptr);
}

void Inbox::on_message(std::string_view text) {
  if (text.size() > kMaxMessageBytes) return;
  auto message = nlohmann::json::parse(text, nullptr, false);
  if (!message.is_object()) {
    log_write(LogLevel::warn, tag_, "cluster: inbox: a message that is not a JSON object (dropped)");
    return;
  }
  std::string k = message.value("k", std::string());
  uint64_t rid = message.value("rid", uint64_t{0});
  nlohmann::json body = message.contains("body") ? message["body"] : nlohmann::json::object();
  if (k == "ans") {
    finish(rid, &body);  // a late one finds nothing pending: dropped
    return;
  }
  if (k != "req") return;
  std::string from = message.value("from", std::string());
  std::string kind = message.value("kind", std::string());
  auto it = handlers_.find(kind);
  if (from.empty() || it == handlers_.end()) {
    log_write(LogLevel::warn, tag_, "cluster: inbox: unknown request '" + kind.substr(0, 64) + "' (dropped)");
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  auto answered = std::make_shared<bool>(false);
  Reply reply = [this, alive, answered, from, rid](nlohmann::json answer) {
    if (alive.expired() || *answered) return;
    *answered = true;
    nlohmann::json out{{"k", "ans"}, {"rid", rid}, {"body", std::move(answer)}};
    redis_.command({"PUBLISH", channel_of(from), out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)},
                   [](const RedisReply*, std::string_view) {});
  };
  Handler handler = it->second;
  handler(body, from, std::move(reply));
}

}  // namespace nshost::cluster
