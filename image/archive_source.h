#pragma once
// libarchive behind the EntrySource interface. TarStream chains two readers: the first undoes any compression
// (gzip, bzip2, xz, zstd) and yields raw bytes, which are hashed (the layer's diff_id) and fed to the second, a tar
// reader. So one pass over the input gives the entries, the digest of the input as stored and the digest of the
// uncompressed tar stream. write_directory_tar makes a tar of a directory tree.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "image/entry.h"
#include "image/limits.h"

namespace sbx::image {

struct StreamDigests {
  std::string raw_hex;     // sha256 of every byte of the input
  uint64_t raw_bytes = 0;
  std::string diff_hex;    // sha256 of the uncompressed tar stream: the layer's diff_id
  uint64_t diff_bytes = 0;
};

struct StreamOptions {
  std::string shown;                  // names the input in errors
  Budget* budget = nullptr;           // counts uncompressed stream bytes (and input bytes, below)
  bool count_archive_bytes = false;   // the input is the import's source: count it against max_archive_bytes
  std::function<void(uint64_t raw_bytes)> progress;  // after every read of the input
};

class TarStream final : public EntrySource {
 public:
  // Reads a tar archive, compressed or not, from `fd` as it stands (a pipe is fine: it is read once).
  static Result<std::unique_ptr<TarStream>> open(Fd fd, StreamOptions options);
  ~TarStream() override;

  Result<bool> next(Entry& entry) override;
  Result<std::optional<DataBlock>> read_block() override;
  // After next() returned false: reads what follows the archive's end to the end of the input, checks the tar
  // stream ended with its end-of-archive marker, and returns the digests.
  Result<StreamDigests> finish();

  struct Impl;

 private:
  explicit TarStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct DirTarStats {
  uint64_t entries = 0;
  uint64_t sockets = 0;  // left out: tar cannot hold them
};

// Writes a pax tar of the tree at `dir` to `out_fd`: symlinks are not followed, mount points not crossed; the root
// is the entry "./". Entries and content are counted against `budget`, so a huge tree is stopped early.
Result<DirTarStats> write_directory_tar(const std::string& dir, int out_fd, Budget& budget,
                                        const std::function<void(uint64_t bytes)>& progress);

}  // namespace sbx::image
