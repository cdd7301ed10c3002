#pragma once
// Opening paths beneath a directory fd with openat2, so a name taken from an archive never leads outside it.
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace sbx::image {

enum class Symlinks {
  kRefuse,          // any symlink on the way fails with ELOOP (layers: a symlink in a parent is an escape)
  kFollowBeneath,   // relative symlinks are followed but never out of the directory (image archive blobs)
};

// openat2(dirfd, path, flags | O_CLOEXEC) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV, plus
// RESOLVE_NO_SYMLINKS for Symlinks::kRefuse. `path` "." opens `dirfd` itself again.
Result<Fd> open_beneath(int dirfd, const std::string& path, int flags, Symlinks symlinks = Symlinks::kRefuse);

// Opens a regular file beneath `dirfd` for reading; anything else (a fifo, a device, a directory) is refused
// without blocking on it.
Result<Fd> open_regular_beneath(int dirfd, const std::string& path, Symlinks symlinks);

// Reads a whole regular file beneath `dirfd`, refusing one larger than `limit` bytes.
Result<std::string> read_regular_beneath(int dirfd, const std::string& path, size_t limit, Symlinks symlinks);

// Removes everything inside the directory `dirfd` (not the directory itself), never following symlinks or crossing
// into other mounts. `shown` names the directory in errors.
Result<void> empty_directory(int dirfd, const std::string& shown);

// The size of a regular file's open fd.
Result<uint64_t> file_size(int fd, const std::string& shown);

}  // namespace sbx::image
