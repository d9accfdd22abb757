#pragma once
// A libcurl multi handle driven by a libuv loop: curl tells us which sockets
// to watch (one uv_poll each) and when to wake it (one uv_timer); finished
// transfers are reported through `on_done`. Never blocks: DNS runs on curl's
// threaded resolver, connect/TLS/transfer on the loop.
#include <curl/curl.h>
#include <uv.h>

#include <functional>
#include <unordered_set>

#include "runtime/core/uv_handle.hpp"

namespace nshost {

// curl_global_init once per process (thread-safe).
void curl_global_once();

class CurlMulti {
 public:
  // Called outside any curl callback, once per finished easy handle, which is
  // still attached: the callee may remove (and free) it.
  using OnDone = std::function<void(CURL* easy, CURLcode result)>;

  CurlMulti(uv_loop_t* loop, OnDone on_done);
  // Every easy handle must have been removed first.
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  // Starts the transfer; returns curl's error code.
  CURLMcode add(CURL* easy);
  // Stops the transfer (no on_done for it). Safe on a finished handle.
  void remove(CURL* easy);
  CURLM* get() const { return multi_; }

 private:
  struct Poll;
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  void action(curl_socket_t fd, int flags);
  void drain_done();
  void close_poll(Poll* poll);

  uv_loop_t* loop_;
  OnDone on_done_;
  CURLM* multi_ = nullptr;
  UvHandle<uv_timer_t> timer_;
  std::unordered_set<Poll*> polls_;
  bool draining_ = false;
};

}  // namespace nshost
