// Compiled seccomp filters stored as files: a sandbox's own (written once when the sandbox is created, read by every
// exec into it) and the disk cache's (one per compiled profile, read by every later process that needs it).
#include <fcntl.h>
#include <linux/filter.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "base/file.h"
#include "runtime/seccomp.h"
#include "runtime/seccomp_internal.h"

namespace sbx::rt {

namespace {

constexpr std::string_view kMagic = "SBXBPF1\n";
constexpr size_t kMaxProgramBytes = BPF_MAXINSNS * sizeof(sock_filter);
constexpr size_t kMaxFileBytes = kMagic.size() + kMaxProgramBytes;
constexpr std::string_view kCacheMagic = "SBXBPFC1\n";
constexpr size_t kCacheHeaderBytes = kCacheMagic.size() + sizeof(uint64_t);  // the magic, the key's length

// `header` followed by the filter's instructions, or an error when they are not a whole program.
Result<std::string> with_program(std::string header, const SeccompFilter& filter) {
  if (!valid_program_length(filter.insns.size())) {
    return make_error("{} instructions is not a valid program", filter.insns.size());
  }
  header.append(reinterpret_cast<const char*>(filter.insns.data()), filter.insns.size() * sizeof(sock_filter));
  return header;
}

// The program in `bytes` (instructions in native byte order), or why they are not a whole program.
Result<std::shared_ptr<const SeccompFilter>> filter_from_bytes(std::string_view bytes) {
  if (bytes.size() % sizeof(sock_filter) != 0 || !valid_program_length(bytes.size() / sizeof(sock_filter))) {
    return make_error("{} bytes of instructions, not a whole program", bytes.size());
  }
  auto filter = std::make_shared<SeccompFilter>();
  filter->insns.resize(bytes.size() / sizeof(sock_filter));
  std::memcpy(filter->insns.data(), bytes.data(), bytes.size());
  return std::shared_ptr<const SeccompFilter>(std::move(filter));
}

// Replaces `name` in `dirfd` with a file of mode 0600 holding `data`: a reader sees the old file or the whole new one.
// The temp file's name is this call's own (pid and a serial number), so concurrent writers never share one; `sync`
// makes the data durable before the rename. A failed write leaves no temp file.
Result<void> replace_file_at(int dirfd, const std::string& name, std::string_view data, bool sync) {
  static std::atomic<uint64_t> serial{0};
  const std::string tmp = fmt::format("{}.tmp.{}.{}", name, ::getpid(), serial++);
  SBX_ASSIGN(Fd fd, open_at(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NOCTTY, 0600));
  Result<void> done = write_all(fd.get(), data);
  if (!done.ok()) {
    done = std::move(done).error().context(fmt::format("'{}'", tmp));
  } else if (sync && ::fsync(fd.get()) != 0) {
    done = sys_error("fsync '{}'", tmp);
  } else if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    done = sys_error("rename '{}' to '{}'", tmp, name);
  }
  if (!done.ok()) {
    (void)::unlinkat(dirfd, tmp.c_str(), 0);
  }
  return done;
}

}  // namespace

Result<void> check_private(const struct stat& st, std::string_view what) {
  if (st.st_uid != ::geteuid()) {
    return make_error("{}: owned by uid {}, not by the runtime's uid {}", what, st.st_uid, ::geteuid());
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return make_error("{}: writable by group or others (mode {:04o})", what, st.st_mode & 07777);
  }
  return ok();
}

Result<void> write_seccomp_filter(const std::string& path, const SeccompFilter& filter) {
  auto data = with_program(std::string(kMagic), filter);
  if (!data.ok()) {
    return std::move(data).error().context(fmt::format("store the seccomp filter in '{}'", path));
  }
  SBX_TRY_CTX(replace_file_at(AT_FDCWD, path, *data, /*sync=*/false), "store the seccomp filter");
  return ok();
}

Result<std::shared_ptr<const SeccompFilter>> read_seccomp_filter(const std::string& path) {
  auto data = read_file(path, kMaxFileBytes);
  if (!data.ok()) {
    return std::move(data).error().context("load the stored seccomp filter");
  }
  std::string_view body(*data);
  if (!body.starts_with(kMagic)) {
    return make_error("load the stored seccomp filter: '{}' does not start with the filter magic", path);
  }
  body.remove_prefix(kMagic.size());
  auto filter = filter_from_bytes(body);
  if (!filter.ok()) {
    return make_error("load the stored seccomp filter: '{}' holds {}", path, filter.error().message());
  }
  return filter;
}

Result<std::shared_ptr<const SeccompFilter>> read_cached_filter(int dirfd, const std::string& name,
                                                                std::string_view key) {
  SBX_ASSIGN(Fd fd, open_at(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return sys_error("fstat '{}'", name);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error("'{}': not a regular file", name);
  }
  SBX_TRY(check_private(st, fmt::format("'{}'", name)));
  auto data = read_all(fd.get(), kCacheHeaderBytes + key.size() + kMaxProgramBytes);
  if (!data.ok()) {
    return std::move(data).error().context(fmt::format("'{}'", name));
  }
  std::string_view body(*data);
  if (body.size() < kCacheHeaderBytes || !body.starts_with(kCacheMagic)) {
    return make_error("'{}': does not start with the cache file magic", name);
  }
  uint64_t key_size = 0;
  std::memcpy(&key_size, body.data() + kCacheMagic.size(), sizeof key_size);
  body.remove_prefix(kCacheHeaderBytes);
  if (key_size != key.size() || !body.starts_with(key)) {
    return make_error("'{}': compiled from another profile, capabilities or libseccomp", name);
  }
  body.remove_prefix(key.size());
  auto filter = filter_from_bytes(body);
  if (!filter.ok()) {
    return std::move(filter).error().context(fmt::format("'{}'", name));
  }
  return filter;
}

Result<void> write_cached_filter(int dirfd, const std::string& name, std::string_view key,
                                 const SeccompFilter& filter) {
  const uint64_t key_size = key.size();
  std::string header(kCacheMagic);
  header.append(reinterpret_cast<const char*>(&key_size), sizeof key_size);
  header.append(key);
  SBX_ASSIGN(std::string data, with_program(std::move(header), filter));
  return replace_file_at(dirfd, name, data, /*sync=*/true);
}

}  // namespace sbx::rt
