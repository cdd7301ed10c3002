#pragma once
// Limits of one import and the Budget that enforces them while data is read, so an archive bomb is stopped early.
#include <cstdint>

#include "base/error.h"

namespace sbx::image {

struct Limits {
  uint64_t max_entries = 300000;                     // archive entries, all layers together
  uint64_t max_bytes = uint64_t{32} << 30;           // uncompressed file content, all layers together
  uint64_t max_archive_bytes = uint64_t{64} << 30;   // bytes read from the source
};

class Budget {
 public:
  explicit Budget(Limits limits) : limits_(limits) {}

  const Limits& limits() const { return limits_; }
  uint64_t entries() const { return entries_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t archive_bytes() const { return archive_bytes_; }

  // Counts one entry; fails once there are more than max_entries.
  Result<void> add_entry();
  // Fails when `size` more bytes of content would pass max_bytes (checked before writing a file).
  Result<void> check_bytes(uint64_t size) const;
  // Counts `size` bytes of content written.
  Result<void> add_bytes(uint64_t size);
  // Counts `size` bytes of uncompressed archive stream (content, headers and padding). Allowed: max_bytes plus
  // kStreamBytesPerEntry per allowed entry, so headers and data of skipped entries cannot grow without bound.
  Result<void> add_stream_bytes(uint64_t size);
  // Counts `size` bytes read from the source.
  Result<void> add_archive_bytes(uint64_t size);
  // Forgets the entries and content counted so far (the outer archive of an image is not layer content).
  void reset_content() {
    entries_ = 0;
    bytes_ = 0;
    stream_bytes_ = 0;
  }

  static constexpr uint64_t kStreamBytesPerEntry = 4096;

 private:
  Limits limits_;
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
  uint64_t stream_bytes_ = 0;
  uint64_t archive_bytes_ = 0;
};

}  // namespace sbx::image
