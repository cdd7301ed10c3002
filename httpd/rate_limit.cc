#include "httpd/rate_limit.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace sbx::httpd {

namespace {

constexpr size_t kPruneAbove = 10000;  // keys kept before full buckets are dropped

int whole_seconds_at_least_one(double seconds) { return std::max(1, static_cast<int>(std::ceil(seconds))); }

}  // namespace

void TokenBucket::refill(double now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + (now - last_) * rate_);
    last_ = now;
  }
}

int TokenBucket::take(double now) {
  refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return 0;
  }
  if (rate_ <= 0) {
    return 3600;
  }
  return whole_seconds_at_least_one((1.0 - tokens_) / rate_);
}

bool TokenBucket::full(double now) const {
  return rate_ > 0 && std::min(burst_, tokens_ + (now - last_) * rate_) >= burst_;
}

int KeyedRateLimiter::take(const std::string& key, double now) {
  std::lock_guard lock(mu_);
  if (buckets_.size() > kPruneAbove) {
    std::erase_if(buckets_, [&](const auto& kv) { return kv.second.full(now); });
  }
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    it = buckets_.emplace(key, TokenBucket(rate_, burst_, now)).first;
  }
  return it->second.take(now);
}

size_t KeyedRateLimiter::size() {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

void FailureLimiter::expire(std::deque<double>& times, double now) const {
  while (!times.empty() && times.front() <= now - window_) {
    times.pop_front();
  }
}

int FailureLimiter::blocked(const std::string& address, double now) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(address);
  if (it == failures_.end()) {
    return 0;
  }
  expire(it->second, now);
  if (it->second.empty()) {
    failures_.erase(it);
    return 0;
  }
  if (static_cast<int>(it->second.size()) < limit_) {
    return 0;
  }
  // Free again once enough failures aged out to fall below the limit.
  double until = it->second[it->second.size() - static_cast<size_t>(limit_)] + window_;
  return whole_seconds_at_least_one(until - now);
}

void FailureLimiter::record_failure(const std::string& address, double now) {
  std::lock_guard lock(mu_);
  if (failures_.size() > kPruneAbove) {
    for (auto it = failures_.begin(); it != failures_.end();) {
      expire(it->second, now);
      it = it->second.empty() ? failures_.erase(it) : std::next(it);
    }
  }
  auto& times = failures_[address];
  expire(times, now);
  times.push_back(now);
  // Only the last `limit` failures matter to blocked().
  while (static_cast<int>(times.size()) > std::max(limit_, 1)) {
    times.pop_front();
  }
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace sbx::httpd
