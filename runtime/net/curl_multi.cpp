#include "runtime/net/curl_multi.hpp"

#include <mutex>
#include <stdexcept>

namespace nshost {

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
  });
}

struct CurlMulti::Poll {
  uv_poll_t handle;
  curl_socket_t fd;
  CurlMulti* owner;
};

CurlMulti::CurlMulti(uv_loop_t* loop, OnDone on_done) : loop_(loop), on_done_(std::move(on_done)) {
  curl_global_once();
  multi_ = curl_multi_init();
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
  if (int rc = timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    curl_multi_cleanup(multi_);
    throw std::runtime_error(std::string("uv_timer_init: ") + uv_strerror(rc));
  }
  timer_.get()->data = this;
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

CurlMulti::~CurlMulti() {
  // Cleanup may still report sockets to remove; our callbacks stay valid.
  curl_multi_cleanup(multi_);
  for (Poll* poll : std::unordered_set<Poll*>(polls_)) close_poll(poll);
  timer_.close();
}

CURLMcode CurlMulti::add(CURL* easy) { return curl_multi_add_handle(multi_, easy); }

void CurlMulti::remove(CURL* easy) { curl_multi_remove_handle(multi_, easy); }

void CurlMulti::close_poll(Poll* poll) {
  polls_.erase(poll);
  uv_poll_stop(&poll->handle);
  poll->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle),
           [](uv_handle_t* h) { delete reinterpret_cast<Poll*>(h->data); });
}

int CurlMulti::on_socket(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
  auto* self = static_cast<CurlMulti*>(userp);
  auto* poll = static_cast<Poll*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (poll) {
      curl_multi_assign(self->multi_, fd, nullptr);
      self->close_poll(poll);
    }
    return 0;
  }
  if (!poll) {
    poll = new Poll{};
    poll->fd = fd;
    poll->owner = self;
    if (uv_poll_init_socket(self->loop_, &poll->handle, fd) != 0) {
      delete poll;
      return -1;
    }
    poll->handle.data = poll;
    self->polls_.insert(poll);
    curl_multi_assign(self->multi_, fd, poll);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&poll->handle, events, [](uv_poll_t* h, int status, int ready) {
    auto* p = static_cast<Poll*>(h->data);
    if (!p->owner) return;
    int flags = 0;
    // libuv reports a socket error (POLLERR, e.g. a reset) as UV_EBADF; let
    // curl read the socket so its message names the real cause.
    if (status < 0) flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    if (ready & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (ready & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    p->owner->action(p->fd, flags);
  });
  return 0;
}

int CurlMulti::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<CurlMulti*>(userp);
  if (timeout_ms < 0) {
    uv_timer_stop(self->timer_.get());
    return 0;
  }
  // Even a 0 ms timeout runs from the loop, never inside curl's callback.
  uv_timer_start(
      self->timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<CurlMulti*>(t->data)->action(CURL_SOCKET_TIMEOUT, 0);
      },
      static_cast<uint64_t>(timeout_ms), 0);
  return 0;
}

void CurlMulti::action(curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
  drain_done();
}

void CurlMulti::drain_done() {
  if (draining_) return;
  draining_ = true;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    on_done_(easy, result);
  }
  draining_ = false;
}

}  // namespace nshost
