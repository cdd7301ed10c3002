#include "image/archive_source.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "base/file.h"
#include "image/fs.h"
#include "image/sha256.h"

namespace sbx::image {

namespace {

constexpr size_t kReadSize = 1 << 20;
constexpr uint64_t kEndOfArchive = 1024;  // two zero blocks

struct ArchiveReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
struct ResolverDeleter {
  void operator()(struct archive_entry_linkresolver* r) const { archive_entry_linkresolver_free(r); }
};
using ReadArchive = std::unique_ptr<struct archive, ArchiveReadDeleter>;
using WriteArchive = std::unique_ptr<struct archive, ArchiveWriteDeleter>;
using ArchiveEntry = std::unique_ptr<struct archive_entry, EntryDeleter>;
using LinkResolver = std::unique_ptr<struct archive_entry_linkresolver, ResolverDeleter>;

Error archive_error(struct archive* a, int status = ARCHIVE_FATAL) {
  const char* text = archive_error_string(a);
  int err = archive_errno(a);
  if (text == nullptr) {
    return Error(fmt::format("libarchive failed (status {})", status), err > 0 ? err : 0);
  }
  return Error(text, err > 0 ? err : 0);
}

// The number of zero bytes at the end of [data, data + size), or `size` plus `before` if all of it is zero.
uint64_t trailing_zeros(const char* data, size_t size, uint64_t before) {
  size_t i = size;
  while (i > 0 && data[i - 1] == 0) {
    --i;
  }
  return i == 0 ? before + size : size - i;
}

EntryType entry_type(struct archive_entry* ae) {
  if (archive_entry_hardlink(ae) != nullptr) {
    return EntryType::kHardlink;
  }
  switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
      return EntryType::kFile;
    case AE_IFDIR:
      return EntryType::kDir;
    case AE_IFLNK:
      return EntryType::kSymlink;
    case AE_IFIFO:
      return EntryType::kFifo;
    case AE_IFCHR:
      return EntryType::kCharDev;
    case AE_IFBLK:
      return EntryType::kBlockDev;
    case AE_IFSOCK:
      return EntryType::kSocket;
    default:
      return EntryType::kOther;
  }
}

Result<void> fill_entry(struct archive_entry* ae, Entry& e) {
  const char* path = archive_entry_pathname(ae);
  if (path == nullptr) {
    return make_error("an entry without a name");
  }
  e.path = path;
  e.type = entry_type(ae);
  if (e.type == EntryType::kHardlink) {
    e.link = archive_entry_hardlink(ae);
  } else if (e.type == EntryType::kSymlink) {
    const char* target = archive_entry_symlink(ae);
    e.link = target != nullptr ? target : "";
  }
  e.mode = archive_entry_perm(ae) & 07777;
  e.uid = archive_entry_uid(ae);
  e.gid = archive_entry_gid(ae);
  e.has_mtime = archive_entry_mtime_is_set(ae) != 0;
  e.mtime_sec = archive_entry_mtime(ae);
  e.mtime_nsec = archive_entry_mtime_nsec(ae);
  la_int64_t size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
  if (size < 0) {
    return make_error("entry '{}': negative size", e.path);
  }
  e.size = static_cast<uint64_t>(size);
  e.rdev_major = archive_entry_rdevmajor(ae);
  e.rdev_minor = archive_entry_rdevminor(ae);
  archive_entry_xattr_reset(ae);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t value_size = 0;
  while (archive_entry_xattr_next(ae, &name, &value, &value_size) == ARCHIVE_OK) {
    // A pax header may carry one xattr twice (SCHILY.xattr and LIBARCHIVE.xattr): the last one counts.
    std::string text(static_cast<const char*>(value), value_size);
    auto same = std::find_if(e.xattrs.begin(), e.xattrs.end(), [&](const auto& x) { return x.first == name; });
    if (same != e.xattrs.end()) {
      same->second = std::move(text);
    } else {
      e.xattrs.emplace_back(name, std::move(text));
    }
  }
  return ok();
}

}  // namespace

struct TarStream::Impl {
  Fd fd;
  StreamOptions opts;
  ReadArchive raw;  // the input, decompressed, as one "raw" entry
  ReadArchive tar;  // the tar reader fed from `raw`
  std::vector<char> buf = std::vector<char>(kReadSize);
  Sha256 raw_hash;
  Sha256 diff_hash;
  uint64_t raw_bytes = 0;
  uint64_t diff_bytes = 0;
  uint64_t zeros = 0;  // zero bytes at the end of the stream so far
  bool input_eof = false;
  bool raw_eof = false;
  std::optional<Error> error;  // raised inside a libarchive callback

  Error fail(struct archive* a, int status) {
    Error e = error ? *error : archive_error(a, status);
    if (opts.shown.empty()) {
      return e;
    }
    return std::move(e).context(fmt::format("read '{}'", opts.shown));
  }
  std::string shown_prefix() const { return opts.shown.empty() ? "" : fmt::format("read '{}': ", opts.shown); }

  // Reader 1's input: the file, hashed and counted as it is read.
  Result<size_t> read_input() {
    ssize_t n = 0;
    do {
      n = ::read(fd.get(), buf.data(), buf.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      return sys_error("read '{}'", opts.shown);
    }
    if (n == 0) {
      input_eof = true;
      return size_t{0};
    }
    raw_hash.update(buf.data(), static_cast<size_t>(n));
    raw_bytes += static_cast<uint64_t>(n);
    if (opts.count_archive_bytes && opts.budget != nullptr) {
      SBX_TRY(opts.budget->add_archive_bytes(static_cast<uint64_t>(n)));
    }
    if (opts.progress) {
      opts.progress(raw_bytes);
    }
    return static_cast<size_t>(n);
  }

  static la_ssize_t input_callback(struct archive*, void* self, const void** out) {
    auto* impl = static_cast<Impl*>(self);
    auto n = impl->read_input();
    if (!n.ok()) {
      impl->error = std::move(n).error();
      return -1;
    }
    *out = impl->buf.data();
    return static_cast<la_ssize_t>(*n);
  }

  // Reader 2's input: reader 1's decompressed bytes, hashed for the diff_id.
  Result<std::optional<DataBlock>> read_decompressed() {
    if (raw_eof) {
      return std::optional<DataBlock>();
    }
    const void* data = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(raw.get(), &data, &size, &offset);
    if (r == ARCHIVE_EOF) {
      raw_eof = true;
      return std::optional<DataBlock>();
    }
    if (r != ARCHIVE_OK) {
      if (!error && archive_error_string(raw.get()) == nullptr) {
        return make_error("{}truncated or corrupt compressed data", shown_prefix());
      }
      return fail(raw.get(), r);
    }
    if (offset < 0 || static_cast<uint64_t>(offset) != diff_bytes) {
      return make_error("{}decompressed data out of order", shown_prefix());
    }
    diff_hash.update(data, size);
    diff_bytes += size;
    zeros = trailing_zeros(static_cast<const char*>(data), size, zeros);
    if (opts.budget != nullptr) {
      SBX_TRY(opts.budget->add_stream_bytes(size));
    }
    return std::optional<DataBlock>(DataBlock{static_cast<const char*>(data), size, 0});
  }

  static la_ssize_t decompressed_callback(struct archive*, void* self, const void** out) {
    auto* impl = static_cast<Impl*>(self);
    auto block = impl->read_decompressed();
    if (!block.ok()) {
      impl->error = std::move(block).error();
      return -1;
    }
    if (!*block) {
      return 0;
    }
    *out = (*block)->data;
    return static_cast<la_ssize_t>((*block)->size);
  }

  Result<void> open_raw();
  Result<void> open_tar();
};

Result<void> TarStream::Impl::open_raw() {
  raw.reset(archive_read_new());
  if (!raw) {
    return make_error("archive_read_new: out of memory");
  }
  // Only the filters libarchive implements itself: never one that would run an external program.
  if (archive_read_support_filter_gzip(raw.get()) != ARCHIVE_OK ||
      archive_read_support_filter_bzip2(raw.get()) != ARCHIVE_OK ||
      archive_read_support_filter_xz(raw.get()) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(raw.get()) != ARCHIVE_OK ||
      archive_read_support_format_raw(raw.get()) != ARCHIVE_OK) {
    return archive_error(raw.get()).context("libarchive without gzip, bzip2, xz or zstd");
  }
  int r = archive_read_open(raw.get(), this, nullptr, input_callback, nullptr);
  if (r != ARCHIVE_OK) {
    return fail(raw.get(), r);
  }
  struct archive_entry* ae = nullptr;
  r = archive_read_next_header(raw.get(), &ae);
  if (r == ARCHIVE_EOF) {
    return make_error("{}empty input", shown_prefix());
  }
  if (r != ARCHIVE_OK) {
    return fail(raw.get(), r);
  }
  return ok();
}

Result<void> TarStream::Impl::open_tar() {
  tar.reset(archive_read_new());
  if (!tar) {
    return make_error("archive_read_new: out of memory");
  }
  if (archive_read_support_format_tar(tar.get()) != ARCHIVE_OK) {
    return archive_error(tar.get()).context("libarchive without tar");
  }
  int r = archive_read_open(tar.get(), this, nullptr, decompressed_callback, nullptr);
  if (r != ARCHIVE_OK) {
    return fail(tar.get(), r).context("not a tar archive");
  }
  return ok();
}

TarStream::TarStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TarStream::~TarStream() = default;

Result<std::unique_ptr<TarStream>> TarStream::open(Fd fd, StreamOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->fd = std::move(fd);
  impl->opts = std::move(options);
  SBX_TRY(impl->open_raw());
  SBX_TRY(impl->open_tar());
  return std::unique_ptr<TarStream>(new TarStream(std::move(impl)));
}

Result<bool> TarStream::next(Entry& entry) {
  struct archive_entry* ae = nullptr;
  int r = archive_read_next_header(impl_->tar.get(), &ae);
  if (r == ARCHIVE_EOF) {
    return false;
  }
  // ARCHIVE_WARN too: a damaged header, a name that cannot be converted; nothing to accept half-read.
  if (r != ARCHIVE_OK) {
    return impl_->fail(impl_->tar.get(), r);
  }
  auto filled = fill_entry(ae, entry);
  if (!filled.ok()) {
    return make_error("{}{}", impl_->shown_prefix(), filled.error().message());
  }
  return true;
}

Result<std::optional<DataBlock>> TarStream::read_block() {
  const void* data = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  int r = archive_read_data_block(impl_->tar.get(), &data, &size, &offset);
  if (r == ARCHIVE_EOF) {
    return std::optional<DataBlock>();
  }
  if (r != ARCHIVE_OK || offset < 0) {
    return impl_->fail(impl_->tar.get(), r);
  }
  return std::optional<DataBlock>(DataBlock{static_cast<const char*>(data), size, static_cast<uint64_t>(offset)});
}

Result<StreamDigests> TarStream::finish() {
  Impl& s = *impl_;
  while (!s.raw_eof) {
    SBX_TRY(s.read_decompressed());
  }
  while (!s.input_eof) {
    SBX_TRY(s.read_input());
  }
  if (s.zeros < kEndOfArchive) {
    return make_error("{}truncated tar archive (no end-of-archive marker)", s.shown_prefix());
  }
  return StreamDigests{s.raw_hash.hex_digest(), s.raw_bytes, s.diff_hash.hex_digest(), s.diff_bytes};
}

// ---- directory -> tar ----

namespace {

struct TarWriter {
  int fd;
  uint64_t bytes = 0;
  Budget* budget;
  const std::function<void(uint64_t)>* progress;
  std::optional<Error> error;

  static la_ssize_t write_callback(struct archive*, void* self, const void* data, size_t size) {
    auto* w = static_cast<TarWriter*>(self);
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(w->fd, static_cast<const char*>(data) + done, size - done);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        w->error = sys_error("write the directory's tar");
        return -1;
      }
      done += static_cast<size_t>(n);
    }
    w->bytes += size;
    auto counted = w->budget->add_archive_bytes(size);
    if (!counted.ok()) {
      w->error = std::move(counted).error();
      return -1;
    }
    if (*w->progress) {
      (*w->progress)(w->bytes);
    }
    return static_cast<la_ssize_t>(size);
  }

  Error fail(struct archive* a) const { return error ? *error : archive_error(a); }
};

// The entry's path relative to the tree's root, "./" for the root itself.
Result<std::string> relative_path(const std::string& root, const char* full) {
  std::string path = full != nullptr ? full : "";
  if (path == root) {
    return std::string("./");
  }
  if (path.size() <= root.size() + 1 || path.compare(0, root.size(), root) != 0 || path[root.size()] != '/') {
    return make_error("'{}' is not below '{}'", path, root);
  }
  return path.substr(root.size() + 1);
}

// Copies a regular file's data into the tar from a descriptor opened beneath the tree's root without following any
// symlink, and only if it is still the file whose header was written (so a swapped-in symlink leads nowhere).
Result<void> copy_file_data(int root_fd, const std::string& rel, struct archive_entry* ae, struct archive* w,
                            TarWriter& writer) {
  SBX_ASSIGN(Fd fd, open_regular_beneath(root_fd, rel, Symlinks::kRefuse));
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return sys_error("stat '{}'", rel);
  }
  if (st.st_ino != static_cast<ino_t>(archive_entry_ino64(ae)) || st.st_dev != archive_entry_dev(ae)) {
    return make_error("'{}' changed while it was read", rel);
  }
  std::vector<char> buf(kReadSize);
  auto left = static_cast<uint64_t>(archive_entry_size(ae));
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buf.data(), std::min<uint64_t>(buf.size(), left));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sys_error("read '{}'", rel);
    }
    if (n == 0) {
      return make_error("'{}' shrank while it was read", rel);
    }
    if (archive_write_data(w, buf.data(), static_cast<size_t>(n)) != n) {
      return writer.fail(w);
    }
    left -= static_cast<uint64_t>(n);
  }
  return ok();
}

struct DirTar {
  std::string root;
  Fd root_fd;
  ReadArchive disk;
  WriteArchive out;
  LinkResolver resolver;
  TarWriter writer;
  Budget& budget;
  DirTarStats stats;

  Result<void> open(int out_fd);
  Result<bool> next();
  Result<void> write_entry(struct archive_entry* ae);
};

Result<void> DirTar::open(int out_fd) {
  SBX_ASSIGN(root_fd, open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  disk.reset(archive_read_disk_new());
  out.reset(archive_write_new());
  resolver.reset(archive_entry_linkresolver_new());
  if (!disk || !out || !resolver) {
    return make_error("libarchive: out of memory");
  }
  if (archive_read_disk_set_symlink_physical(disk.get()) != ARCHIVE_OK ||
      archive_read_disk_set_behavior(disk.get(), ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS | ARCHIVE_READDISK_NO_ACL |
                                                     ARCHIVE_READDISK_NO_FFLAGS) != ARCHIVE_OK ||
      archive_read_disk_open(disk.get(), root.c_str()) != ARCHIVE_OK) {
    return archive_error(disk.get()).context(fmt::format("read directory '{}'", root));
  }
  writer.fd = out_fd;
  if (archive_write_set_format_pax_restricted(out.get()) != ARCHIVE_OK ||
      archive_write_open(out.get(), &writer, nullptr, TarWriter::write_callback, nullptr) != ARCHIVE_OK) {
    return writer.fail(out.get());
  }
  archive_entry_linkresolver_set_strategy(resolver.get(), archive_format(out.get()));
  return ok();
}

Result<void> DirTar::write_entry(struct archive_entry* ae) {
  SBX_ASSIGN(std::string rel, relative_path(root, archive_entry_pathname(ae)));
  if (archive_entry_filetype(ae) == AE_IFSOCK) {
    ++stats.sockets;
    return ok();
  }
  SBX_TRY(budget.add_entry());
  ++stats.entries;
  archive_entry_copy_pathname(ae, rel.c_str());
  archive_entry_unset_atime(ae);
  archive_entry_unset_ctime(ae);
  archive_entry_unset_birthtime(ae);
  struct archive_entry* spare = nullptr;
  archive_entry_linkify(resolver.get(), &ae, &spare);  // a second name of an inode becomes a hardlink, size 0
  bool has_data = archive_entry_filetype(ae) == AE_IFREG && archive_entry_hardlink(ae) == nullptr &&
                  archive_entry_size(ae) > 0;
  if (has_data) {
    SBX_TRY(budget.add_bytes(static_cast<uint64_t>(archive_entry_size(ae))));
  }
  if (archive_write_header(out.get(), ae) != ARCHIVE_OK) {
    return writer.fail(out.get()).context(fmt::format("'{}'", rel));
  }
  if (has_data) {
    SBX_TRY(copy_file_data(root_fd.get(), rel, ae, out.get(), writer));
  }
  return ok();
}

Result<bool> DirTar::next() {
  ArchiveEntry ae(archive_entry_new());
  int r = archive_read_next_header2(disk.get(), ae.get());
  if (r == ARCHIVE_EOF) {
    return false;
  }
  if (r != ARCHIVE_OK) {
    return archive_error(disk.get()).context(fmt::format("read directory '{}'", root));
  }
  if (archive_read_disk_can_descend(disk.get()) && archive_read_disk_descend(disk.get()) != ARCHIVE_OK) {
    return archive_error(disk.get()).context(fmt::format("read directory '{}'", root));
  }
  SBX_TRY(write_entry(ae.get()));
  return true;
}

}  // namespace

Result<DirTarStats> write_directory_tar(const std::string& dir, int out_fd, Budget& budget,
                                        const std::function<void(uint64_t bytes)>& progress) {
  DirTar t{dir, Fd(), nullptr, nullptr, nullptr, TarWriter{out_fd, 0, &budget, &progress, std::nullopt}, budget, {}};
  SBX_TRY(t.open(out_fd));
  for (;;) {
    SBX_ASSIGN(bool more, t.next());
    if (!more) {
      break;
    }
  }
  if (archive_write_close(t.out.get()) != ARCHIVE_OK) {
    return t.writer.fail(t.out.get());
  }
  return t.stats;
}

}  // namespace sbx::image
