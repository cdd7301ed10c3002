#pragma once
// Result<T> and Error: the error type every layer of sbx returns instead of throwing.
// An Error carries a message built up from the failing call outwards
// ("create sandbox 'a1': mount proc on /proc: Operation not permitted (EPERM)")
// and, when a syscall failed, its errno.
#include <cerrno>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace sbx {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message, int err = 0) : message_(std::move(message)), errno_(err) {}

  // The error of a failed syscall: "<what>: <strerror>" with errno kept for the caller.
  static Error from_errno(std::string what, int err = errno);

  const std::string& message() const { return message_; }
  int sys_errno() const { return errno_; }
  // An application-level error class (the API's error codes); 0 when none was set. Context keeps it.
  int code() const { return code_; }
  Error&& with_code(int code) && {
    code_ = code;
    return std::move(*this);
  }
  Error& with_code(int code) & {
    code_ = code;
    return *this;
  }

  // Prepends context: Error("EINVAL").context("mount proc") -> "mount proc: EINVAL".
  Error&& context(std::string_view what) &&;
  Error& context(std::string_view what) &;

 private:
  std::string message_;
  int errno_ = 0;
  int code_ = 0;
};

// Name of an errno value ("ENOENT"), or "E<number>" for one this table does not know.
std::string errno_name(int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(v_); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  Error& error() & { return error_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool failed_ = false;
};

inline Result<void> ok() { return {}; }

// Shorthand for the common "syscall failed" return: return sys_error("open '{}'", path);
template <typename... Args>
Error sys_error(fmt::format_string<Args...> f, Args&&... args) {
  int err = errno;
  return Error::from_errno(fmt::format(f, std::forward<Args>(args)...), err);
}

template <typename... Args>
Error make_error(fmt::format_string<Args...> f, Args&&... args) {
  return Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace sbx

#define SBX_CONCAT_INNER(a, b) a##b
#define SBX_CONCAT(a, b) SBX_CONCAT_INNER(a, b)

// SBX_TRY(expr): returns the error of a failed Result<void>.
#define SBX_TRY(expr)                               \
  do {                                              \
    auto&& sbx_try_r_ = (expr);                     \
    if (!sbx_try_r_.ok()) {                         \
      return std::move(sbx_try_r_).error();         \
    }                                               \
  } while (0)

// SBX_TRY_CTX(expr, "fmt", args...): as SBX_TRY, prepending context to the error.
#define SBX_TRY_CTX(expr, ...)                                              \
  do {                                                                      \
    auto&& sbx_try_r_ = (expr);                                             \
    if (!sbx_try_r_.ok()) {                                                 \
      return std::move(sbx_try_r_).error().context(fmt::format(__VA_ARGS__)); \
    }                                                                       \
  } while (0)

// SBX_ASSIGN(auto x, expr): declares x from a Result<T>, returning its error on failure.
#define SBX_ASSIGN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                     \
  if (!tmp.ok()) {                       \
    return std::move(tmp).error();       \
  }                                      \
  decl = std::move(tmp).value()
#define SBX_ASSIGN(decl, expr) SBX_ASSIGN_IMPL(SBX_CONCAT(sbx_assign_r_, __LINE__), decl, expr)

// SBX_ASSIGN_CTX(x, expr, "fmt", args...): as SBX_ASSIGN, prepending context to the error.
#define SBX_ASSIGN_CTX_IMPL(tmp, decl, expr, ...)                    \
  auto tmp = (expr);                                                 \
  if (!tmp.ok()) {                                                   \
    return std::move(tmp).error().context(fmt::format(__VA_ARGS__)); \
  }                                                                  \
  decl = std::move(tmp).value()
#define SBX_ASSIGN_CTX(decl, expr, ...) \
  SBX_ASSIGN_CTX_IMPL(SBX_CONCAT(sbx_assign_r_, __LINE__), decl, expr, __VA_ARGS__)
