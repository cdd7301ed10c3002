#pragma once
// Rate limits: a token bucket per API key, and a sliding window of failed authentications per client address.
// Time is passed in (seconds on a monotonic clock), so the logic is tested without sleeping. Thread-safe.
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sbx::httpd {

// `rate` tokens per second up to `burst`; a request takes one.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst, double now) : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}
  // Takes a token when there is one (0 returned); else the whole seconds until there will be one (>= 1).
  int take(double now);
  // Whether the bucket has been full since `now` (no state worth keeping).
  bool full(double now) const;

 private:
  void refill(double now);

  double rate_;
  double burst_;
  double tokens_;
  double last_;
};

// One token bucket per key. take() returns 0 when allowed, else Retry-After in whole seconds (>= 1).
class KeyedRateLimiter {
 public:
  KeyedRateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
  int take(const std::string& key, double now);
  size_t size();

 private:
  std::mutex mu_;
  double rate_;
  double burst_;
  std::unordered_map<std::string, TokenBucket> buckets_;
};

// At most `limit` failed authentications per address in any `window` seconds. Once an address reached the limit,
// every request from it is refused (even with a good key) until its oldest failure in the window has aged out.
class FailureLimiter {
 public:
  FailureLimiter(int limit, double window) : limit_(limit), window_(window) {}
  // 0 when the address may try; else Retry-After in whole seconds (>= 1).
  int blocked(const std::string& address, double now);
  void record_failure(const std::string& address, double now);

 private:
  void expire(std::deque<double>& times, double now) const;

  std::mutex mu_;
  int limit_;
  double window_;
  std::unordered_map<std::string, std::deque<double>> failures_;
};

// Seconds on the monotonic clock.
double monotonic_seconds();

}  // namespace sbx::httpd
