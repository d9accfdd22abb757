#include "runtime/roles/bots.hpp"

#include <sys/resource.h>

#include <algorithm>

#include "runtime/core/log.hpp"

namespace nshost {
namespace {

// Each bot holds a UDP socket; a thousand bots need more than the common
// soft limit of 1024 descriptors. Raises the soft limit toward the hard one.
void raise_file_limit(size_t needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
  rlim_t want = limit.rlim_max == RLIM_INFINITY ? needed : std::min<rlim_t>(needed, limit.rlim_max);
  limit.rlim_cur = std::max(limit.rlim_cur, want);
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur < needed)
    log_write(LogLevel::warn, "client",
              "open-file limit " + std::to_string(limit.rlim_cur) + " may be too low for " + std::to_string(needed) +
                  " descriptors; raise it with ulimit -n");
}

}  // namespace

BotFleet::BotFleet(uv_loop_t* loop, Options options) : loop_(loop), options_(std::move(options)) {
  bots_.reserve(options_.bots);
}

BotFleet::~BotFleet() {
  ramp_.close();
  bots_.clear();
}

int BotFleet::exit_code() const {
  int code = failed_exit_code_;
  for (const auto& bot : bots_) code = std::max(code, bot->exit_code());
  return code;
}

bool BotFleet::start(std::string& error) {
  // One socket per bot, plus the loop's own descriptors and some slack.
  raise_file_limit(static_cast<size_t>(options_.bots) + 64);
  if (!start_bot(error)) {
    failed_exit_code_ = bots_.empty() ? 1 : bots_.back()->exit_code();
    return false;
  }
  int rc = ramp_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  if (rc == 0) {
    ramp_.get()->data = this;
    ramp_start_ns_ = monotonic_ns();
    rc = uv_timer_start(
        ramp_.get(),
        [](uv_timer_t* t) {
          if (t->data) static_cast<BotFleet*>(t->data)->start_due();
        },
        kRampIntervalMs, kRampIntervalMs);
  }
  if (rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  return true;
}

bool BotFleet::start_bot(std::string& error) {
  size_t index = bots_.size() + 1;
  auto bot = std::make_unique<ClientRole>(loop_, options_, "client#" + std::to_string(index));
  ClientRole* raw = bot.get();
  raw->set_bot_index(static_cast<uint32_t>(index));
  bots_.push_back(std::move(bot));
  raw->on_finished = [this] { on_bot_finished(); };
  if (raw->start(error)) return true;
  // A bot that never started owns nothing that needs the loop; count it done.
  raw->on_finished = nullptr;
  failed_exit_code_ = std::max(failed_exit_code_, raw->exit_code());
  return false;
}

void BotFleet::start_due() {
  if (stopping_) return;
  size_t due = options_.bots;
  if (options_.bots_ramp_per_s > 0) {
    double elapsed_s = static_cast<double>(monotonic_ns() - ramp_start_ns_) / 1e9;
    due = std::min<size_t>(options_.bots, 1 + static_cast<size_t>(elapsed_s * options_.bots_ramp_per_s));
  }
  auto settled = [](const ClientRole& bot) { return bot.joined() || bot.finished() || !bot.on_finished; };
  while (seated_before_ < bots_.size() && settled(*bots_[seated_before_])) ++seated_before_;
  size_t joining = 0;
  for (size_t i = seated_before_; i < bots_.size(); ++i) joining += !settled(*bots_[i]);
  // An explicit ramp paces the joins itself (bench/ starts 500/s).
  size_t window = options_.bots_ramp_per_s > 0 ? options_.bots : kJoinWindow;
  while (bots_.size() < due && joining < window) {
    ++joining;
    std::string error;
    if (!start_bot(error))
      log_write(LogLevel::error, "client#" + std::to_string(bots_.size()), error);
  }
  if (bots_.size() >= options_.bots) {
    ramp_.close();
    on_bot_finished();  // in case every bot has already finished or failed
  }
}

void BotFleet::on_bot_finished() {
  if (finished_ || (bots_.size() < options_.bots && !stopping_)) return;
  // A bot that failed to start has no on_finished and nothing left to close.
  for (const auto& bot : bots_)
    if (bot->on_finished && !bot->finished()) return;
  finished_ = true;
  ramp_.close();
  if (on_finished) on_finished();
}

void BotFleet::begin_shutdown() {
  if (finished_) return;
  stopping_ = true;
  ramp_.close();
  for (auto& bot : bots_)
    if (bot->on_finished && !bot->finished()) bot->begin_shutdown();
  on_bot_finished();
}

}  // namespace nshost
