#include "runtime/rootfs_access.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/capability.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/file.h"

namespace sbx::rt {

namespace {

constexpr uint64_t kResolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
constexpr long kXfsMagic = 0x58465342;
constexpr long kBtrfsMagic = 0x9123683E;

Result<Fd> open_in(int root, const std::string& path, uint64_t flags, mode_t mode = 0) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = kResolve;
  long fd = ::syscall(SYS_openat2, root, path.c_str(), &how, sizeof how);
  if (fd < 0) {
    return sys_error("open '{}' in the sandbox", path);
  }
  return Fd(static_cast<int>(fd));
}

// Refuses kernel file systems: a write through the sandbox's /proc or /sys would be a write by host root.
Result<void> check_file_system(int fd, const std::string& path) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) < 0) {
    return sys_error("statfs '{}'", path);
  }
  switch (static_cast<long>(fs.f_type)) {
    case OVERLAYFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:
    case kXfsMagic:
    case kBtrfsMagic:
      return ok();
    default:
      return Error::from_errno(fmt::format("'{}' is on a kernel or special file system (type {:#x}); "
                                           "file operations reach only the sandbox's own files",
                                           path, static_cast<unsigned long>(fs.f_type)),
                               EACCES);
  }
}

// The parent directory of `path` (opened inside the root) and the last component.
Result<std::pair<Fd, std::string>> open_parent(int root, const std::string& path, bool mkdirs) {
  SBX_ASSIGN(auto parts, split_sandbox_path(path));
  if (parts.empty()) {
    return Error::from_errno("the sandbox's root directory itself cannot be written or removed", EISDIR);
  }
  std::string name = parts.back();
  if (name == "..") {
    return Error::from_errno(fmt::format("'{}': the last component must name an entry", path), EINVAL);
  }
  parts.pop_back();
  std::string dir = "/";
  for (const auto& p : parts) {
    if (mkdirs) {
      SBX_ASSIGN(Fd up, open_in(root, dir, O_PATH | O_DIRECTORY));
      if (::mkdirat(up.get(), p.c_str(), 0755) < 0 && errno != EEXIST) {
        return sys_error("mkdir '{}/{}' in the sandbox", dir == "/" ? "" : dir, p);
      }
    }
    dir = dir == "/" ? "/" + p : dir + "/" + p;
  }
  SBX_ASSIGN(Fd parent, open_in(root, dir, O_PATH | O_DIRECTORY));
  SBX_TRY(check_file_system(parent.get(), dir));
  return std::make_pair(std::move(parent), name);
}

std::string type_of(mode_t mode) {
  if (S_ISREG(mode)) {
    return "file";
  }
  if (S_ISDIR(mode)) {
    return "dir";
  }
  if (S_ISLNK(mode)) {
    return "symlink";
  }
  return "other";
}

}  // namespace

Result<std::vector<std::string>> split_sandbox_path(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return Error::from_errno(fmt::format("'{}' is not an absolute path", path), EINVAL);
  }
  if (path.find('\0') != std::string::npos || path.size() > 4096) {
    return Error::from_errno("the path holds a NUL byte or is too long", EINVAL);
  }
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) {
      j = path.size();
    }
    std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  return parts;
}

namespace {

// Raises every permitted capability into the effective set: moving the fsuid away from 0 drops the file
// capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, ...) from it.
Result<void> raise_effective_caps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::capget(&header, data) < 0) {
    return sys_error("read the calling thread's capabilities");
  }
  for (auto& d : data) {
    d.effective = d.permitted;
  }
  if (::capset(&header, data) < 0) {
    return sys_error("raise the calling thread's file capabilities");
  }
  return ok();
}

}  // namespace

Result<SandboxFsIdentity> SandboxFsIdentity::assume(const SandboxState& state) {
  SandboxFsIdentity id;
  if (!state.userns) {
    return id;
  }
  uid_t uid = state.userns->host_root_uid();
  gid_t gid = state.userns->host_root_gid();
  id.previous_gid_ = static_cast<gid_t>(::setfsgid(gid));
  id.previous_uid_ = static_cast<uid_t>(::setfsuid(uid));
  id.active_ = true;  // from here on the destructor puts the previous ids back
  // setfsuid(2) reports no error: a second call returns what is in force.
  if (static_cast<uid_t>(::setfsuid(uid)) != uid || static_cast<gid_t>(::setfsgid(gid)) != gid) {
    return Error(fmt::format("act as the sandbox's root (host uid {}, gid {}): not permitted", uid, gid), EPERM);
  }
  SBX_TRY(raise_effective_caps());
  return id;
}

SandboxFsIdentity::~SandboxFsIdentity() {
  if (active_) {
    // Back to 0, the kernel puts the file capabilities back into the effective set.
    ::setfsuid(previous_uid_);
    ::setfsgid(previous_gid_);
  }
}

Result<Fd> open_sandbox_root(const SandboxState& state) {
  SBX_ASSIGN(Fd pidfd, open_init_pidfd(state));
  std::string proc_root = fmt::format("/proc/{}/root", state.init_pid);
  SBX_ASSIGN(Fd root, open_at(AT_FDCWD, proc_root, O_PATH | O_DIRECTORY));
  // Still alive after the open: the /proc entry we opened was that init's, not a successor's with its pid.
  pollfd p{pidfd.get(), POLLIN, 0};
  if (::poll(&p, 1, 0) != 0) {
    return Error::from_errno(fmt::format("sandbox '{}' stopped", state.id), ESRCH);
  }
  return root;
}

Result<ReadResult> read_in_root(int root, const std::string& path, uint64_t offset, uint64_t max_bytes) {
  SBX_ASSIGN(auto parts, split_sandbox_path(path));
  (void)parts;
  // Non-blocking: a FIFO opens at once (and is then refused) instead of waiting for a writer.
  SBX_ASSIGN(Fd fd, open_in(root, path, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error::from_errno(fmt::format("'{}' is not a regular file", path), S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  }
  SBX_TRY(check_file_system(fd.get(), path));
  ReadResult r;
  r.size = static_cast<uint64_t>(st.st_size);
  uint64_t want = offset >= r.size ? 0 : std::min<uint64_t>(max_bytes, r.size - offset);
  r.data.resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd.get(), r.data.data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("read '{}'", path);
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  r.data.resize(got);
  r.eof = offset + got >= r.size;
  return r;
}

Result<uint64_t> write_in_root(int root, const std::string& path, std::string_view data, const WriteOptions& o) {
  SBX_ASSIGN(auto parent, open_parent(root, path, o.mkdirs));
  // The last component, if a symlink, still resolves inside the root.
  uint64_t flags = O_WRONLY | O_NONBLOCK | O_NOCTTY | (o.append ? O_APPEND : 0);
  // Created here (O_EXCL) or already there: only a file this call creates gets `mode`, exactly (no umask).
  bool created = true;
  auto opened = open_in(root, path, flags | O_CREAT | O_EXCL, o.mode & 07777);
  if (!opened.ok() && opened.error().sys_errno() == EEXIST) {
    created = false;
    opened = open_in(root, path, flags);
  }
  SBX_ASSIGN(Fd fd, std::move(opened));
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error::from_errno(fmt::format("'{}' is not a regular file", path), EINVAL);
  }
  SBX_TRY(check_file_system(fd.get(), path));
  if (created && ::fchmod(fd.get(), o.mode & 07777) < 0) {
    return sys_error("chmod '{}'", path);
  }
  if (!o.append && ::ftruncate(fd.get(), 0) < 0) {
    return sys_error("truncate '{}'", path);
  }
  SBX_TRY_CTX(write_all(fd.get(), data), "write '{}'", path);
  if ((o.uid || o.gid) && ::fchown(fd.get(), o.uid ? *o.uid : static_cast<uid_t>(-1),
                                   o.gid ? *o.gid : static_cast<gid_t>(-1)) < 0) {
    return sys_error("chown '{}'", path);
  }
  return static_cast<uint64_t>(data.size());
}

Result<std::vector<FileEntry>> list_in_root(int root, const std::string& path) {
  SBX_ASSIGN(Fd dir, open_in(root, path, O_RDONLY | O_DIRECTORY));
  SBX_TRY(check_file_system(dir.get(), path));
  int dup = ::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    return sys_error("dup");
  }
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return sys_error("list '{}'", path);
  }
  std::vector<FileEntry> out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      continue;  // removed meanwhile
    }
    out.push_back({name, type_of(st.st_mode), static_cast<uint64_t>(st.st_size), st.st_mode & 07777u,
                   static_cast<int64_t>(st.st_mtime)});
  }
  ::closedir(d);
  return out;
}

Result<void> remove_in_root(int root, const std::string& path, bool recursive) {
  SBX_ASSIGN(auto parent, open_parent(root, path, false));
  // O_PATH fds do not serve as dirfd for unlinkat; reopen the parent for real.
  SBX_ASSIGN(Fd dir, open_at(parent.first.get(), ".", O_RDONLY | O_DIRECTORY));
  struct stat st {};
  if (::fstatat(dir.get(), parent.second.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    return sys_error("stat '{}' in the sandbox", path);
  }
  if (S_ISDIR(st.st_mode)) {
    if (recursive) {
      return remove_tree_at(dir.get(), parent.second, path);
    }
    if (::unlinkat(dir.get(), parent.second.c_str(), AT_REMOVEDIR) < 0) {
      return sys_error("remove directory '{}' (not empty? use recursive)", path);
    }
    return ok();
  }
  if (::unlinkat(dir.get(), parent.second.c_str(), 0) < 0) {
    return sys_error("remove '{}'", path);
  }
  return ok();
}

}  // namespace sbx::rt
