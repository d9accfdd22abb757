#pragma once
// Owning wrapper for a libuv handle. libuv frees nothing itself and a handle
// must stay allocated until its close callback runs, so the handle lives on
// the heap and the close callback deletes it; the loop must run once more
// after destruction for that to happen (the roles' shutdown does).
#include <uv.h>

#include <utility>

namespace nshost {

template <class T>
class UvHandle {
 public:
  UvHandle() = default;
  // `init` is e.g. [&](uv_timer_t* t) { return uv_timer_init(loop, t); }.
  template <class Init>
  int init(Init&& init) {
    close();
    auto* h = new T{};
    int rc = std::forward<Init>(init)(h);
    if (rc != 0) {
      delete h;
      return rc;
    }
    handle_ = h;
    return 0;
  }
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  void close() {
    if (!handle_) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    handle_ = nullptr;
  }
  T* get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }

 private:
  T* handle_ = nullptr;
};

inline int64_t monotonic_ns() { return static_cast<int64_t>(uv_hrtime()); }

}  // namespace nshost
