#include "runtime/net/net_state.hpp"

#include <cctype>

#include "runtime/net/net_handles.hpp"

#if NSHOST_WITH_HTTP
#include "runtime/net/curl_multi.hpp"
#endif

namespace nshost {

using net_detail::mib;
using net_detail::over_memory;

const char* net_event_name(NetEvent::Type type) {
  switch (type) {
    case NetEvent::Type::connected: return "connected";
    case NetEvent::Type::data: return "data";
    case NetEvent::Type::message: return "message";
    case NetEvent::Type::accepted: return "accepted";
    case NetEvent::Type::http_done: return "http_done";
    case NetEvent::Type::error: return "error";
    case NetEvent::Type::closed: return "closed";
  }
  return "?";
}

namespace net_detail {

std::string uv_message(int code) { return std::string(uv_err_name(code)) + ": " + uv_strerror(code); }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string over_memory(const std::string& what, size_t bytes) {
  return "ENOMEM: " + what + " (" + std::to_string(bytes) +
         " bytes) would pass the script's memory limit (--memory-limit counts Lua and net buffers)";
}

}  // namespace net_detail

NetState::NetState(uv_loop_t* loop, std::function<bool()> role_finished, NetPolicy policy,
                   std::shared_ptr<NetMemory> memory)
    : loop_(loop), role_finished_(std::move(role_finished)), policy_(std::move(policy)), memory_(std::move(memory)) {
  if (!role_finished_) return;
  watch_ = new uv_prepare_t{};
  uv_prepare_init(loop_, watch_);
  watch_->data = this;
  uv_prepare_start(watch_, [](uv_prepare_t* p) {
    auto* self = static_cast<NetState*>(p->data);
    if (self && self->role_finished_()) {
      self->close_all();
      uv_prepare_stop(p);
    }
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(watch_));  // never keeps the loop alive itself
}

NetState::~NetState() {
  close_all();
  // Writes still lingering release into nothing once the script is gone.
  if (memory_) memory_->detach();
  if (watch_) {
    watch_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(watch_), [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
  }
}

void NetState::close_all() {
  // Destroy one at a time, so a destructor that closes another handle finds
  // the table consistent.
  while (!handles_.empty()) handles_.extract(handles_.begin());
#if NSHOST_WITH_TCP
  close_lingering();
#endif
#if NSHOST_WITH_HTTP
  http_multi_.reset();
#endif
  events_.clear();
  finished_.clear();
}

int64_t NetState::adopt(std::unique_ptr<Handle> h) {
  int64_t id = next_handle_++;
  h->id = id;
  handles_.emplace(id, std::move(h));
  return id;
}

NetState::Handle* NetState::find(int64_t handle) const {
  auto it = handles_.find(handle);
  return it == handles_.end() ? nullptr : it->second.get();
}

std::optional<HandleStatus> NetState::status(int64_t handle) const {
  Handle* h = find(handle);
  if (!h) return std::nullopt;
  return h->status;
}

void NetState::close(int64_t handle) {
  auto node = handles_.extract(handle);
  // node's destructor tears the handle down here, after the table is consistent.
}

void NetState::post(NetEvent event) { events_.push_back(std::move(event)); }

void NetState::compact_events() {
  std::deque<NetEvent> kept;
  for (NetEvent& ev : events_) {
    Handle* h = find(ev.handle);
    if (!h) continue;
    if (ev.item_seq && (h->inbox.empty() || h->inbox.front().seq > ev.item_seq)) continue;
    kept.push_back(std::move(ev));
  }
  events_.swap(kept);
}

void NetState::post_item(Handle& h, NetEvent::Type type, std::string data, int64_t accepted) {
  if (h.inbox.size() >= kMaxInboxItems || h.inbox_bytes + data.size() > kMaxInboxBytes) {
    h.overflow("ENOBUFS: receive queue full (" + std::to_string(h.inbox.size()) + " unread items, " +
               std::to_string(h.inbox_bytes) + " bytes; limits " + std::to_string(kMaxInboxItems) + " items, " +
               mib(kMaxInboxBytes) + "): connection closed");
    return;
  }
  if (!h.held.grow(data.size())) {
    h.overflow(over_memory("received data not yet read", data.size()) + ": connection closed");
    return;
  }
  if (events_.size() >= kMaxEvents) compact_events();
  uint64_t seq = next_seq_++;
  h.inbox_bytes += data.size();
  h.inbox.push_back(InboxItem{seq, std::move(data), accepted});
  if (events_.size() >= kMaxEvents) {
    // The item stays readable with tcp_recv / ws_recv / tcp_accept.
    h.overflow("ENOBUFS: event queue full (" + std::to_string(kMaxEvents) +
               " events; poll net.poll_event() every tick): connection closed");
    return;
  }
  NetEvent ev{type, h.id, {}, 0, seq};
  post(std::move(ev));
}

void NetState::fail(Handle& h, std::string message) {
  if (h.finished) return;
  h.shutdown();
  h.status = HandleStatus::error;
  h.finished = true;
  post(NetEvent{NetEvent::Type::error, h.id, std::move(message)});
  finished_.push_back(h.id);
  evict_finished();
}

void NetState::finish(Handle& h, HandleStatus status) {
  if (h.finished) return;
  h.shutdown();
  h.status = status;
  h.finished = true;
  bool done = status == HandleStatus::done;
  post(NetEvent{done ? NetEvent::Type::http_done : NetEvent::Type::closed, h.id, {}});
  finished_.push_back(h.id);
  evict_finished();
}

void NetState::evict_finished() {
  while (finished_.size() > kMaxFinishedHandles) {
    int64_t id = finished_.front();
    finished_.pop_front();
    Handle* h = find(id);
    if (h && h->finished) close(id);
  }
}

std::optional<NetEvent> NetState::poll_event() {
  while (!events_.empty()) {
    NetEvent ev = std::move(events_.front());
    events_.pop_front();
    Handle* h = find(ev.handle);
    if (!h) continue;  // closed by the script
    if (ev.item_seq) {
      if (h->inbox.empty() || h->inbox.front().seq != ev.item_seq) continue;  // already read
      InboxItem& item = h->inbox.front();
      h->inbox_bytes -= item.data.size();
      h->held.shrink(item.data.size());
      ev.text = std::move(item.data);
      ev.accepted = item.accepted;
      h->inbox.pop_front();
    }
    return ev;
  }
  return std::nullopt;
}

namespace net_detail {

std::optional<InboxItem> pop_item(NetState::Handle* h) {
  if (!h || h->inbox.empty()) return std::nullopt;
  InboxItem item = std::move(h->inbox.front());
  h->inbox.pop_front();
  h->inbox_bytes -= item.data.size();
  h->held.shrink(item.data.size());
  return item;
}

}  // namespace net_detail

}  // namespace nshost
