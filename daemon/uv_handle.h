#pragma once
// Owning wrappers for libuv handles. A handle's memory is freed in its close callback (libuv may still touch it
// until then), so the owner's destructor only starts the close. Private to the daemon's .cc files.
#include <uv.h>

#include <utility>

namespace sbx::daemon {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  explicit UvHandle(T* h) : h_(h) {}
  UvHandle(UvHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UvHandle& operator=(UvHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~UvHandle() { reset(); }

  static UvHandle make() { return UvHandle(new T{}); }
  T* get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  // Stops callbacks (uv_close) and frees the handle once libuv is done with it.
  void reset() {
    if (h_ == nullptr) {
      return;
    }
    auto* h = reinterpret_cast<uv_handle_t*>(std::exchange(h_, nullptr));
    h->data = nullptr;
    if (uv_is_closing(h)) {
      return;
    }
    uv_close(h, [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
  }

 private:
  T* h_ = nullptr;
};

}  // namespace sbx::daemon
