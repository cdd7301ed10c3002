#pragma once
// Entry and EntrySource: what the unpacker consumes, independent of libarchive (a test can feed entries directly).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace sbx::image {

enum class EntryType { kFile, kDir, kSymlink, kHardlink, kFifo, kCharDev, kBlockDev, kSocket, kOther };

struct Entry {
  std::string path;  // as the archive names it, unchecked
  EntryType type = EntryType::kOther;
  uint32_t mode = 0;  // permission bits with setuid/setgid/sticky (07777)
  int64_t uid = 0;
  int64_t gid = 0;
  bool has_mtime = false;
  int64_t mtime_sec = 0;
  long mtime_nsec = 0;
  uint64_t size = 0;  // bytes of data that follow (regular files; hardlinks may carry data too)
  std::string link;   // a symlink's target text, or a hardlink's target path
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// A piece of an entry's data at `offset` (holes of sparse files are left out).
struct DataBlock {
  const char* data = nullptr;
  size_t size = 0;
  uint64_t offset = 0;
};

class EntrySource {
 public:
  virtual ~EntrySource() = default;
  // The next entry's header; false at the end of the archive.
  virtual Result<bool> next(Entry& entry) = 0;
  // The current entry's next block of data; nullopt when its data is all read.
  virtual Result<std::optional<DataBlock>> read_block() = 0;
};

}  // namespace sbx::image
