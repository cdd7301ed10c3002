#include "image/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "base/file.h"

namespace sbx::image {

Result<Fd> open_beneath(int dirfd, const std::string& path, int flags, Symlinks symlinks) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  if (symlinks == Symlinks::kRefuse) {
    how.resolve |= RESOLVE_NO_SYMLINKS;
  }
  long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  if (fd < 0) {
    return sys_error("open '{}'", path);
  }
  return Fd(static_cast<int>(fd));
}

Result<Fd> open_regular_beneath(int dirfd, const std::string& path, Symlinks symlinks) {
  SBX_ASSIGN(Fd fd, open_beneath(dirfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, symlinks));
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error("'{}' is not a regular file", path);
  }
  int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) < 0) {
    return sys_error("fcntl '{}'", path);
  }
  return fd;
}

Result<std::string> read_regular_beneath(int dirfd, const std::string& path, size_t limit, Symlinks symlinks) {
  SBX_ASSIGN(Fd fd, open_regular_beneath(dirfd, path, symlinks));
  auto data = read_all(fd.get(), limit);
  if (!data.ok()) {
    return std::move(data).error().context(fmt::format("read '{}'", path));
  }
  return data;
}

Result<void> empty_directory(int dirfd, const std::string& shown) {
  int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) {
    return sys_error("open '{}'", shown);
  }
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return sys_error("opendir '{}'", shown);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") {
      names.push_back(std::move(name));
    }
  }
  ::closedir(d);
  for (const auto& name : names) {
    SBX_TRY(remove_tree_at(dirfd, name, shown + "/" + name));
  }
  return ok();
}

Result<uint64_t> file_size(int fd, const std::string& shown) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) {
    return sys_error("stat '{}'", shown);
  }
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace sbx::image
