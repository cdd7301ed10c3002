#include "image/limits.h"

namespace sbx::image {

Result<void> Budget::add_entry() {
  if (entries_ >= limits_.max_entries) {
    return make_error("more than {} entries (max_entries)", limits_.max_entries);
  }
  ++entries_;
  return ok();
}

Result<void> Budget::check_bytes(uint64_t size) const {
  if (size > limits_.max_bytes || bytes_ > limits_.max_bytes - size) {
    return make_error("more than {} bytes of content (max_bytes)", limits_.max_bytes);
  }
  return ok();
}

Result<void> Budget::add_bytes(uint64_t size) {
  SBX_TRY(check_bytes(size));
  bytes_ += size;
  return ok();
}

Result<void> Budget::add_stream_bytes(uint64_t size) {
  uint64_t limit = limits_.max_bytes;
  uint64_t overhead = limits_.max_entries * kStreamBytesPerEntry + (uint64_t{1} << 20);
  if (limits_.max_entries > (UINT64_MAX >> 13) || limit > UINT64_MAX - overhead) {
    limit = UINT64_MAX;
  } else {
    limit += overhead;
  }
  if (size > limit || stream_bytes_ > limit - size) {
    return make_error("more than {} bytes of uncompressed archive (max_bytes plus {} per entry of max_entries)",
                      limit, kStreamBytesPerEntry);
  }
  stream_bytes_ += size;
  return ok();
}

Result<void> Budget::add_archive_bytes(uint64_t size) {
  if (size > limits_.max_archive_bytes || archive_bytes_ > limits_.max_archive_bytes - size) {
    return make_error("more than {} bytes of archive (max_archive_bytes)", limits_.max_archive_bytes);
  }
  archive_bytes_ += size;
  return ok();
}

}  // namespace sbx::image
