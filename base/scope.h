#pragma once
// ScopeGuard: runs a cleanup on scope exit unless dismissed; the rollback tool of every multi-step setup.
#include <utility>

namespace sbx {

template <typename F>
class ScopeGuard {
 public:
  explicit ScopeGuard(F f) : f_(std::move(f)) {}
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ~ScopeGuard() {
    if (armed_) {
      f_();
    }
  }
  void dismiss() { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

}  // namespace sbx
