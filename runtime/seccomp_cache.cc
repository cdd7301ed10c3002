// SeccompCache: compiled profiles kept in memory by the profile file's identity and, with a disk dir, as files keyed
// by everything they were compiled from, for every later process.
#include <fcntl.h>
#include <sys/stat.h>

#include <string_view>

#include "base/file.h"
#include "runtime/seccomp.h"
#include "runtime/seccomp_internal.h"

#include <seccomp.h>

namespace sbx::rt {

namespace {

constexpr size_t kMaxProfileBytes = 4 << 20;

// Names what the parser and the compiler make of a profile's text. Bump the number whenever a change of sbx changes
// what a profile compiles to or whether it compiles (parsing, rule selection, attributes): files of another format are
// never used.
constexpr std::string_view kDiskCacheFormat = "sbx seccomp cache 1";

// Everything a program is compiled from besides this code: libseccomp (its version and the kernel API level it found;
// both decide what it emits and what it accepts), the native architecture, the normalized kept caps and the profile's
// whole text. Every variable-length part is length-prefixed, so two different inputs never give one key.
std::string disk_cache_key(std::string_view text, const std::vector<std::string>& caps) {
  const scmp_version* v = seccomp_version();
  std::string key = fmt::format("{}\nlibseccomp {}.{}.{}\napi {}\nnative {:#x}\ncaps {}\n", kDiskCacheFormat, v->major,
                                v->minor, v->micro, seccomp_api_get(), seccomp_arch_native(), caps.size());
  for (const auto& cap : caps) {
    key += fmt::format("{} {}\n", cap.size(), cap);
  }
  key += fmt::format("profile {}\n", text.size());
  key += text;
  return key;
}

// "<16 hex digits of the key's FNV-1a 64 hash>.bpf". A collision is harmless: the file holds its key.
std::string disk_cache_name(std::string_view key) {
  uint64_t hash = 0xcbf29ce484222325;
  for (unsigned char c : key) {
    hash = (hash ^ c) * 0x100000001b3;
  }
  return fmt::format("{:016x}.bpf", hash);
}

}  // namespace

Result<void> SeccompCache::set_disk_dir(const std::string& dir) {
  if (dir.empty()) {
    disk_dir_.reset();
    return ok();
  }
  std::string what = fmt::format("seccomp cache dir '{}'", dir);
  SBX_TRY_CTX(make_dirs(dir, 0700), "{}", what);
  auto opened = open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_NOCTTY);
  if (!opened.ok()) {
    if (opened.error().sys_errno() == ENOTDIR) {
      return Error(fmt::format("{}: not a directory", what), ENOTDIR);
    }
    return std::move(opened).error().context(what);
  }
  struct stat st {};
  if (::fstat(opened->get(), &st) != 0) {
    return sys_error("fstat '{}'", dir).context(what);
  }
  if (auto mine = check_private(st, what); !mine.ok()) {
    return make_error("{}; it must be private to the runtime, since the programs in it decide which syscalls sandboxes "
                      "may make",
                      mine.error().message());
  }
  disk_dir_ = std::move(*opened);
  return ok();
}

Result<std::shared_ptr<const SeccompFilter>> SeccompCache::load(const std::string& path,
                                                                const std::vector<std::string>& kept_caps) {
  std::string source = fmt::format("seccomp profile '{}'", path);
  auto opened = open_at(AT_FDCWD, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (!opened.ok()) {
    return std::move(opened).error().context(source);
  }
  struct stat st {};
  if (::fstat(opened->get(), &st) != 0) {
    return sys_error("fstat '{}'", path).context(source);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error("{}: not a regular file", source);
  }
  std::vector<std::string> caps = normalize_caps(kept_caps);
  std::string key = path;
  for (const auto& cap : caps) {
    key += '\0' + cap;
  }
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.dev == st.st_dev && it->second.ino == st.st_ino &&
      it->second.size == static_cast<uint64_t>(st.st_size) && it->second.mtime_ns == mtime_ns) {
    return it->second.filter;
  }
  if (it != entries_.end()) {
    entries_.erase(it);  // stale: dropped even if the new version fails to compile
  }
  auto text = read_all(opened->get(), kMaxProfileBytes);
  if (!text.ok()) {
    return std::move(text).error().context(source);
  }
  SBX_ASSIGN(auto filter, load_or_compile(*text, source, caps));
  entries_[key] = Entry{st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size), mtime_ns, filter};
  return filter;
}

Result<std::shared_ptr<const SeccompFilter>> SeccompCache::load_or_compile(const std::string& text,
                                                                           const std::string& source,
                                                                           const std::vector<std::string>& caps) {
  std::string disk_key, name;
  if (disk_dir_) {
    disk_key = disk_cache_key(text, caps);
    name = disk_cache_name(disk_key);
    if (auto cached = read_cached_filter(disk_dir_.get(), name, disk_key); cached.ok()) {
      ++disk_hits_;
      return cached;
    }
    // Any problem with the file (missing, damaged, another key, not private) is a miss: compiled and written again.
  }
  SBX_ASSIGN(SeccompProfile profile, parse_seccomp_profile(text, source));
  auto filter = compile_seccomp_profile(profile, caps);
  if (!filter.ok()) {
    return std::move(filter).error().context(source);
  }
  ++compiles_;
  if (disk_dir_) {
    // A dir that cannot be written only makes later processes compile too.
    (void)write_cached_filter(disk_dir_.get(), name, disk_key, **filter);
  }
  return filter;
}

}  // namespace sbx::rt
