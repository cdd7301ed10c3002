// sbx-httpd's rate limits with an injected clock: token buckets per key and failed authentications per address.
#include <doctest/doctest.h>

#include "httpd/rate_limit.h"

using namespace sbx::httpd;

TEST_SUITE("httpd.rate_limit") {

TEST_CASE("a full bucket allows a burst, then refuses with a whole-second Retry-After") {
  TokenBucket b(2, 3, 100.0);
  CHECK(b.take(100.0) == 0);
  CHECK(b.take(100.0) == 0);
  CHECK(b.take(100.0) == 0);
  CHECK(b.take(100.0) == 1);  // 0.5 s at 2/s, rounded up to at least 1
  CHECK(b.take(100.4) == 1);
  CHECK(b.take(100.5) == 0);  // one token back after 0.5 s
  CHECK(b.take(100.5) == 1);
}

TEST_CASE("a slow rate asks for the seconds a token really takes") {
  TokenBucket b(0.25, 1, 0.0);
  CHECK(b.take(0.0) == 0);
  CHECK(b.take(0.0) == 4);
  CHECK(b.take(3.0) == 1);
  CHECK(b.take(4.0) == 0);
}

TEST_CASE("tokens never exceed the burst however long the bucket was idle") {
  TokenBucket b(10, 2, 0.0);
  CHECK(b.take(1000.0) == 0);
  CHECK(b.take(1000.0) == 0);
  CHECK(b.take(1000.0) >= 1);
}

TEST_CASE("each key has a bucket of its own") {
  KeyedRateLimiter l(1, 1);
  CHECK(l.take("a", 0) == 0);
  CHECK(l.take("a", 0) == 1);
  CHECK(l.take("b", 0) == 0);
  CHECK(l.size() == 2);
}

TEST_CASE("an address is blocked once it reaches the failure limit, good key or not, until the window passes") {
  FailureLimiter f(3, 60);
  CHECK(f.blocked("10.0.0.1", 0) == 0);
  f.record_failure("10.0.0.1", 0);
  f.record_failure("10.0.0.1", 10);
  CHECK(f.blocked("10.0.0.1", 10) == 0);
  f.record_failure("10.0.0.1", 20);
  CHECK(f.blocked("10.0.0.1", 20) == 40);  // the failure at 0 ages out at 60
  CHECK(f.blocked("10.0.0.2", 20) == 0);
  CHECK(f.blocked("10.0.0.1", 59.5) == 1);
  CHECK(f.blocked("10.0.0.1", 60) == 0);
}

TEST_CASE("failures older than the window do not count") {
  FailureLimiter f(2, 1);
  f.record_failure("a", 0);
  f.record_failure("a", 5);
  CHECK(f.blocked("a", 5) == 0);
  f.record_failure("a", 5.5);
  CHECK(f.blocked("a", 5.5) == 1);
}

}
