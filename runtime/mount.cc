#include "runtime/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "base/fd.h"
#include "base/file.h"

namespace sbx::rt {

namespace {

enum class Leaf { kDir, kFile };

// Opens (creating when `create`) the path `path` below "/" with O_PATH, refusing symlinks in every component.
Result<Fd> open_target(const std::string& path, Leaf leaf, bool create) {
  SBX_ASSIGN(Fd cur, open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY));
  size_t pos = 0;
  while (pos < path.size()) {
    size_t start = path.find_first_not_of('/', pos);
    if (start == std::string::npos) {
      break;
    }
    size_t end = path.find('/', start);
    std::string name = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    bool last = end == std::string::npos || path.find_first_not_of('/', end) == std::string::npos;
    pos = end == std::string::npos ? path.size() : end;
    bool want_dir = !last || leaf == Leaf::kDir;
    if (create && want_dir && ::mkdirat(cur.get(), name.c_str(), 0755) < 0 && errno != EEXIST) {
      return sys_error("create directory '{}'", path);
    }
    // mknod, not open(O_CREAT): opening whatever the image put there (a FIFO) could block forever.
    if (create && !want_dir && ::mknodat(cur.get(), name.c_str(), S_IFREG | 0644, 0) < 0 && errno != EEXIST) {
      return sys_error("create file '{}'", path);
    }
    int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0);
    int next = ::openat(cur.get(), name.c_str(), flags);
    if (next < 0) {
      return sys_error("open '{}' (symlinks are not followed)", path);
    }
    cur.reset(next);
  }
  struct stat st {};
  if (::fstat(cur.get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  if (S_ISLNK(st.st_mode)) {
    return Error(fmt::format("open '{}': is a symlink; mount targets must not be", path), ELOOP);
  }
  return cur;
}

Result<void> move_mount_to(int mnt_fd, const std::string& target, Leaf leaf, bool create) {
  SBX_ASSIGN(Fd dst, open_target(target, leaf, create));
  if (::move_mount(mnt_fd, "", dst.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return sys_error("move mount onto '{}'", target);
  }
  return ok();
}

struct FsOption {
  const char* key;
  std::string value;  // empty: a flag
};

// A new detached mount of filesystem `type` (fsopen/fsconfig/fsmount).
Result<Fd> new_fs(const char* type, const std::vector<FsOption>& options, unsigned attrs) {
  int fs = ::fsopen(type, FSOPEN_CLOEXEC);
  if (fs < 0) {
    return sys_error("fsopen {}", type);
  }
  Fd fsfd(fs);
  for (const auto& o : options) {
    int rc = o.value.empty() ? ::fsconfig(fs, FSCONFIG_SET_FLAG, o.key, nullptr, 0)
                             : ::fsconfig(fs, FSCONFIG_SET_STRING, o.key, o.value.c_str(), 0);
    if (rc < 0) {
      return sys_error("configure {} option {}{}{}", type, o.key, o.value.empty() ? "" : "=", o.value);
    }
  }
  if (::fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    return sys_error("create {} filesystem", type);
  }
  int mnt = ::fsmount(fs, FSMOUNT_CLOEXEC, attrs);
  if (mnt < 0) {
    return sys_error("fsmount {}", type);
  }
  return Fd(mnt);
}

Result<void> mount_fs(const char* type, const std::string& target, const std::vector<FsOption>& options,
                      unsigned attrs) {
  SBX_ASSIGN(Fd mnt, new_fs(type, options, attrs));
  SBX_TRY_CTX(move_mount_to(mnt.get(), target, Leaf::kDir, true), "mount {} on '{}'", type, target);
  return ok();
}

// A detached copy of the mount tree at `source` (a bind mount), with `attrs` set on all of it.
Result<Fd> clone_tree(const std::string& source, unsigned attrs) {
  int fd = ::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0) {
    return sys_error("clone mount tree of '{}'", source);
  }
  Fd tree(fd);
  if (attrs != 0) {
    struct mount_attr attr {};
    attr.attr_set = attrs;
    if (::mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
      return sys_error("set mount attributes of '{}'", source);
    }
  }
  return tree;
}

Result<void> mount_upper(const Plan& plan, const SandboxPaths& paths) {
  if (plan.root.upper_tmpfs_size) {
    SBX_ASSIGN(Fd mnt, new_fs("tmpfs", {{"size", std::to_string(*plan.root.upper_tmpfs_size)}, {"mode", "0755"}},
                              MOUNT_ATTR_NODEV));
    if (::move_mount(mnt.get(), "", AT_FDCWD, paths.rw.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      return sys_error("mount tmpfs on '{}'", paths.rw);
    }
  }
  for (const char* sub : {"/upper", "/work"}) {
    std::string dir = paths.rw + sub;
    if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) {
      return sys_error("mkdir '{}'", dir);
    }
  }
  return ok();
}

Result<void> mount_root(const Plan& plan, const SandboxPaths& paths) {
  if (plan.root.read_only) {
    SBX_ASSIGN(Fd tree, clone_tree(plan.root.lower_dirs.front(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV));
    if (::move_mount(tree.get(), "", AT_FDCWD, paths.rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      return sys_error("bind '{}' read-only on '{}'", plan.root.lower_dirs.front(), paths.rootfs);
    }
    return ok();
  }
  SBX_TRY(mount_upper(plan, paths));
  SBX_ASSIGN(std::string options, overlay_options(plan.root, paths));
  // nodev: a device node shipped in an image must not open a host device; /dev is a tmpfs of our own nodes.
  if (::mount("overlay", paths.rootfs.c_str(), "overlay", MS_NODEV, options.c_str()) < 0) {
    return sys_error("mount overlay on '{}'", paths.rootfs);
  }
  return ok();
}

Result<void> pivot_into(const std::string& rootfs) {
  if (::chdir(rootfs.c_str()) < 0) {
    return sys_error("chdir '{}'", rootfs);
  }
  // pivot_root(".", "."): the old root ends up stacked under the new one, then is detached.
  if (::syscall(SYS_pivot_root, ".", ".") < 0) {
    return sys_error("pivot_root into '{}'", rootfs);
  }
  if (::umount2(".", MNT_DETACH) < 0) {
    return sys_error("detach the old root");
  }
  if (::chdir("/") < 0) {
    return sys_error("chdir '/'");
  }
  return ok();
}

struct DeviceNode {
  const char* name;
  unsigned major, minor;
};

constexpr DeviceNode kDevices[] = {{"null", 1, 3},    {"zero", 1, 5},    {"full", 1, 7},
                                   {"random", 1, 8},  {"urandom", 1, 9}, {"tty", 5, 0}};

Result<void> populate_dev(uint64_t shm_size) {
  SBX_ASSIGN(Fd dev, open_target("/dev", Leaf::kDir, false));
  SBX_ASSIGN(Fd devdir, open_at(dev.get(), ".", O_RDONLY | O_DIRECTORY));
  for (const auto& d : kDevices) {
    if (::mknodat(devdir.get(), d.name, S_IFCHR | 0666, makedev(d.major, d.minor)) < 0) {
      return sys_error("mknod /dev/{}", d.name);
    }
    if (::fchmodat(devdir.get(), d.name, 0666, 0) < 0) {
      return sys_error("chmod /dev/{}", d.name);
    }
  }
  const std::pair<const char*, const char*> links[] = {
      {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
      {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"}};
  for (const auto& [name, to] : links) {
    if (::symlinkat(to, devdir.get(), name) < 0) {
      return sys_error("symlink /dev/{}", name);
    }
  }
  SBX_TRY(mount_fs("devpts", "/dev/pts", {{"newinstance", ""}, {"ptmxmode", "0666"}, {"mode", "0620"}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  SBX_TRY(mount_fs("tmpfs", "/dev/shm", {{"mode", "1777"}, {"size", std::to_string(shm_size)}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  return ok();
}

Result<void> mount_system(const Plan& plan) {
  SBX_TRY(mount_fs("proc", "/proc", {}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  SBX_TRY(mount_fs("tmpfs", "/dev", {{"mode", "0755"}, {"size", "65536"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  SBX_TRY(populate_dev(plan.dev_shm_size));
  SBX_TRY(mount_fs("sysfs", "/sys", {},
                   MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  SBX_TRY(mount_fs("tmpfs", "/tmp", {{"mode", "1777"}, {"size", std::to_string(plan.tmp_size)}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  return ok();
}

// Clones every bind source while the host's tree is still visible; attached after pivot_root.
Result<std::vector<Fd>> clone_bind_sources(const std::vector<BindMount>& mounts) {
  std::vector<Fd> trees;
  for (const auto& m : mounts) {
    unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m.read_only ? MOUNT_ATTR_RDONLY : 0);
    SBX_ASSIGN(Fd tree, clone_tree(m.source, attrs));
    trees.push_back(std::move(tree));
  }
  return trees;
}

Result<void> attach_binds(const std::vector<BindMount>& mounts, const std::vector<Fd>& trees) {
  for (size_t i = 0; i < mounts.size(); ++i) {
    struct stat st {};
    if (::fstat(trees[i].get(), &st) < 0) {
      return sys_error("stat bind source '{}'", mounts[i].source);
    }
    Leaf leaf = S_ISDIR(st.st_mode) ? Leaf::kDir : Leaf::kFile;
    SBX_TRY_CTX(move_mount_to(trees[i].get(), mounts[i].destination, leaf, true), "bind '{}' on '{}'",
                mounts[i].source, mounts[i].destination);
  }
  return ok();
}

// A mount target that may be missing (masked and read-only paths differ between kernels): nullopt when it is.
Result<std::optional<Fd>> open_existing(const std::string& path, std::string_view what) {
  auto target = open_target(path, Leaf::kFile, false);
  if (target.ok()) {
    return std::optional<Fd>(std::move(target).value());
  }
  if (target.error().sys_errno() == ENOENT) {
    return std::optional<Fd>();
  }
  return std::move(target).error().context(what);
}

// Hides `path`: /dev/null over a file, an empty read-only tmpfs over a directory. A missing path is skipped.
Result<void> mask_path(const std::string& path) {
  SBX_ASSIGN(std::optional<Fd> target, open_existing(path, "mask"));
  if (!target) {
    return ok();
  }
  struct stat st {};
  if (::fstat(target->get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  Fd cover;
  if (S_ISDIR(st.st_mode)) {
    SBX_ASSIGN(cover, new_fs("tmpfs", {{"size", "0"}, {"mode", "0555"}}, MOUNT_ATTR_RDONLY));
  } else {
    SBX_ASSIGN(cover, clone_tree("/dev/null", 0));
  }
  if (::move_mount(cover.get(), "", target->get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return sys_error("mask '{}'", path);
  }
  return ok();
}

// Re-mounts `path` read-only over itself. A missing path is skipped.
Result<void> make_readonly(const std::string& path) {
  SBX_ASSIGN(std::optional<Fd> target, open_existing(path, "make read-only"));
  if (!target) {
    return ok();
  }
  int fd = ::open_tree(target->get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  if (fd < 0) {
    return sys_error("clone mount tree of '{}'", path);
  }
  Fd tree(fd);
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
  if (::mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
    return sys_error("set '{}' read-only", path);
  }
  if (::move_mount(fd, "", target->get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return sys_error("mount '{}' read-only over itself", path);
  }
  return ok();
}

Result<void> seal_root(const Plan& plan) {
  for (const auto& p : plan.masked_paths) {
    SBX_TRY(mask_path(p));
  }
  for (const auto& p : plan.readonly_paths) {
    SBX_TRY(make_readonly(p));
  }
  if (plan.root.read_only) {
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) < 0) {
      return sys_error("remount / read-only");
    }
  }
  return ok();
}

}  // namespace

Result<std::string> overlay_options(const RootfsPlan& root, const SandboxPaths& paths) {
  std::string lower;
  for (const auto& dir : root.lower_dirs) {
    if (dir.find_first_of(":,\\") != std::string::npos) {
      return make_error("root.lower_dirs: '{}' contains ':', ',' or '\\', which overlayfs options cannot carry", dir);
    }
    lower += (lower.empty() ? "" : ":") + dir;
  }
  std::string options = fmt::format("lowerdir={},upperdir={}/upper,workdir={}/work", lower, paths.rw, paths.rw);
  if (options.size() >= 4096) {
    return make_error("root.lower_dirs: the overlay options are {} bytes, over the kernel's 4095", options.size());
  }
  return options;
}

Result<void> setup_rootfs(const Plan& plan, const SandboxPaths& paths) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
    return sys_error("make / private");
  }
  SBX_TRY(mount_root(plan, paths));
  SBX_ASSIGN(std::vector<Fd> bind_trees, clone_bind_sources(plan.mounts));
  SBX_TRY(pivot_into(paths.rootfs));
  SBX_TRY(mount_system(plan));
  SBX_TRY(attach_binds(plan.mounts, bind_trees));
  SBX_TRY(seal_root(plan));
  return ok();
}

}  // namespace sbx::rt
