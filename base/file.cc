#include "base/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <vector>

namespace sbx {

Result<Fd> open_at(int dirfd, const std::string& path, int flags, mode_t mode) {
  int fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) {
    return sys_error("open '{}'", path);
  }
  return Fd(fd);
}

Result<std::string> read_all(int fd, size_t limit) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("at byte {}", out.size());
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) {
      return make_error("larger than {} bytes", limit);
    }
  }
  return out;
}

Result<std::string> read_file_at(int dirfd, const std::string& path, size_t limit) {
  SBX_ASSIGN(Fd fd, open_at(dirfd, path, O_RDONLY | O_NOCTTY));
  auto data = read_all(fd.get(), limit);
  if (!data.ok()) {
    return std::move(data).error().context(fmt::format("read '{}'", path));
  }
  return data;
}

Result<std::string> read_file(const std::string& path, size_t limit) { return read_file_at(AT_FDCWD, path, limit); }

Result<void> write_file_at(int dirfd, const std::string& path, std::string_view data) {
  SBX_ASSIGN(Fd fd, open_at(dirfd, path, O_WRONLY | O_NOCTTY));
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) {
    return sys_error("write '{}' to '{}'", trim(data), path);
  }
  if (static_cast<size_t>(n) != data.size()) {
    return make_error("write '{}' to '{}': short write", trim(data), path);
  }
  return ok();
}

Result<void> write_file(const std::string& path, std::string_view data) { return write_file_at(AT_FDCWD, path, data); }

Result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Result<void> create_file(const std::string& path, std::string_view data, mode_t mode) {
  SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode));
  SBX_TRY_CTX(write_all(fd.get(), data), "write '{}'", path);
  return ok();
}

Result<uint64_t> parse_u64(std::string_view text) {
  std::string t = trim(text);
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size()) {
    return make_error("'{}' is not an unsigned integer", t);
  }
  return v;
}

Result<void> make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) {
    return make_error("make directory: empty path");
  }
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = path.find('/', pos + 1);
    std::string part = path.substr(0, pos);
    if (::mkdir(part.c_str(), mode) < 0 && errno != EEXIST) {
      return sys_error("mkdir '{}'", part);
    }
  }
  return ok();
}

Result<std::pair<Fd, Fd>> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) {
    return sys_error("create a pipe");
  }
  return std::make_pair(Fd(p[0]), Fd(p[1]));
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    return sys_error("opendir '{}'", path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") {
      names.push_back(std::move(name));
    }
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) {
    return Error::from_errno(fmt::format("readdir '{}'", path), err);
  }
  return names;
}

namespace {

struct DirEntry {
  std::string name;
  bool is_dir = false;
};

// Unlinks every non-directory entry of the directory open at `dirfd` and returns the first subdirectory left, if
// any. Refuses a subdirectory on another device (a mount point): that is reported, never emptied.
Result<std::optional<DirEntry>> clear_files(int dirfd, dev_t dev, const std::string& shown) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    return sys_error("dup fd of '{}'", shown);
  }
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return sys_error("opendir '{}'", shown);
  }
  ::rewinddir(d);
  Result<std::optional<DirEntry>> result = std::optional<DirEntry>();
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) {
        continue;
      }
      result = sys_error("stat '{}/{}'", shown, name);
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        result = make_error("remove '{}/{}': is a mount point, not removing", shown, name);
      } else {
        result = std::optional<DirEntry>(DirEntry{name, true});
      }
      break;
    }
    if (::unlinkat(dirfd, name.c_str(), 0) < 0 && errno != ENOENT) {
      result = sys_error("remove '{}/{}'", shown, name);
      break;
    }
  }
  ::closedir(d);
  return result;
}

// Empties the tree at `top` depth first, holding one directory open at a time whatever the depth (a sandbox can
// build a tree far deeper than the fd limit or the stack would allow a recursive walk). Never follows symlinks.
Result<void> empty_tree(Fd top, dev_t dev, const std::string& shown) {
  Fd cur = std::move(top);
  std::vector<std::string> names;  // the path from `top` down to `cur`
  for (;;) {
    SBX_ASSIGN(std::optional<DirEntry> sub, clear_files(cur.get(), dev, shown));
    if (sub) {
      int fd = ::openat(cur.get(), sub->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        return sys_error("open '{}/.../{}'", shown, sub->name);
      }
      names.push_back(sub->name);
      cur.reset(fd);
      continue;
    }
    if (names.empty()) {
      return ok();
    }
    int parent = ::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (parent < 0) {
      return sys_error("open the parent of '{}/.../{}'", shown, names.back());
    }
    cur.reset(parent);
    if (::unlinkat(cur.get(), names.back().c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) {
      return sys_error("rmdir '{}/.../{}'", shown, names.back());
    }
    names.pop_back();
  }
}

}  // namespace

Result<void> remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    return errno == ENOENT ? ok() : Result<void>(sys_error("stat '{}'", path));
  }
  if (S_ISDIR(st.st_mode)) {
    SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    SBX_TRY(empty_tree(std::move(fd), st.st_dev, path));
    if (::rmdir(path.c_str()) < 0 && errno != ENOENT) {
      return sys_error("rmdir '{}'", path);
    }
    return ok();
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    return sys_error("unlink '{}'", path);
  }
  return ok();
}

Result<void> remove_tree_at(int dirfd, const std::string& name, const std::string& shown) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    return errno == ENOENT ? ok() : Result<void>(sys_error("stat '{}'", shown));
  }
  if (S_ISDIR(st.st_mode)) {
    SBX_ASSIGN(Fd fd, open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    SBX_TRY(empty_tree(std::move(fd), st.st_dev, shown));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT) {
      return sys_error("rmdir '{}'", shown);
    }
    return ok();
  }
  if (::unlinkat(dirfd, name.c_str(), 0) < 0 && errno != ENOENT) {
    return sys_error("unlink '{}'", shown);
  }
  return ok();
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) {
    return {};
  }
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace sbx
