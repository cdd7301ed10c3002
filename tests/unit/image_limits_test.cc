#include <doctest/doctest.h>

#include <cstdint>

#include "image/limits.h"

using namespace sbx::image;

TEST_SUITE("image.limits") {

TEST_CASE("the budget refuses the entry after max_entries, naming the limit") {
  Budget b(Limits{3, 100, 1000});
  for (int i = 0; i < 3; ++i) {
    REQUIRE(b.add_entry().ok());
  }
  auto r = b.add_entry();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "more than 3 entries (max_entries)");
  CHECK(b.entries() == 3);
}

TEST_CASE("content bytes are checked before they are written and add up across layers") {
  Budget b(Limits{10, 100, 1000});
  CHECK(b.check_bytes(100).ok());
  CHECK_FALSE(b.check_bytes(101).ok());
  REQUIRE(b.add_bytes(60).ok());
  CHECK_FALSE(b.add_bytes(41).ok());
  CHECK(b.bytes() == 60);
  REQUIRE(b.add_bytes(40).ok());
  CHECK(b.add_bytes(0).ok());
  auto r = b.add_bytes(1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "more than 100 bytes of content (max_bytes)");
  CHECK_FALSE(b.check_bytes(UINT64_MAX).ok());
}

TEST_CASE("archive bytes have their own limit and survive a reset of the content counters") {
  Budget b(Limits{10, 100, 1000});
  REQUIRE(b.add_archive_bytes(600).ok());
  REQUIRE(b.add_entry().ok());
  REQUIRE(b.add_bytes(50).ok());
  b.reset_content();
  CHECK(b.entries() == 0);
  CHECK(b.bytes() == 0);
  CHECK(b.archive_bytes() == 600);
  auto r = b.add_archive_bytes(401);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "more than 1000 bytes of archive (max_archive_bytes)");
}

TEST_CASE("the uncompressed stream may hold max_bytes plus a header allowance per entry, no more") {
  Budget b(Limits{2, 100, 1000});
  uint64_t allowed = 100 + 2 * Budget::kStreamBytesPerEntry + (1 << 20);
  CHECK(b.add_stream_bytes(allowed).ok());
  CHECK_FALSE(b.add_stream_bytes(1).ok());
  Budget huge(Limits{UINT64_MAX, UINT64_MAX, UINT64_MAX});
  CHECK(huge.add_stream_bytes(UINT64_MAX).ok());
}

}  // TEST_SUITE
