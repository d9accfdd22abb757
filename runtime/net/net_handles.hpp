#pragma once
// Private to runtime/net: the handle record every protocol file (tcp.cpp,
// http.cpp, ws.cpp) derives from, its inbox of unread items, and the message
// helpers they share. Nothing outside runtime/net includes this.
#include <uv.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "runtime/net/net_memory.hpp"
#include "runtime/net/net_state.hpp"

namespace nshost {

// An unread TCP chunk, WebSocket message or accepted client. Each is delivered
// once: by its event (poll_event) or by tcp_recv / ws_recv / tcp_accept,
// whichever comes first.
struct InboxItem {
  uint64_t seq;
  std::string data;
  int64_t accepted = 0;
};

struct NetState::Handle {
  enum class Kind { tcp, listener, http, ws };
  Handle(NetState& n, Kind k, HandleStatus s) : net(n), kind(k), status(s), held(n.memory()) {}
  virtual ~Handle() = default;
  // Stops all I/O at once and releases the transport; the record stays.
  virtual void shutdown() {}
  // A bound was hit while delivering: end the handle (now, or right after
  // the library callback that is running returns).
  virtual void overflow(std::string message) { net.fail(*this, std::move(message)); }

  NetState& net;
  Kind kind;
  HandleStatus status;
  int64_t id = 0;
  bool finished = false;
  std::deque<InboxItem> inbox;
  size_t inbox_bytes = 0;
  // Everything this handle holds for the script: its record, its transport
  // while open, unread data and HTTP request/response bytes.
  Charged held;
};

namespace net_detail {

// "ECODE: message" for a libuv error code.
std::string uv_message(int code);
// ASCII lower case.
std::string lower(std::string s);
// Whole MiB, for limit messages ("16 MiB").
std::string mib(size_t bytes);
// The ENOMEM message for `bytes` of `what` refused by the memory cap.
std::string over_memory(const std::string& what, size_t bytes);
// Takes the oldest unread item of `h` (nullptr: none), releasing its charge.
std::optional<InboxItem> pop_item(NetState::Handle* h);

}  // namespace net_detail

}  // namespace nshost
